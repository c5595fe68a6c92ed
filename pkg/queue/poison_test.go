package queue_test

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/salvo-run/salvo/pkg/queue"
	"github.com/salvo-run/salvo/pkg/transport"
)

func TestMalformedMessageReportedAndRemoved(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var handled atomic.Int32
	var poison poisonLog
	consume(t, b.c, queue.ConsumeOptions{
		Slots: newSlotTable(4).get,
		Handler: func(ctx context.Context, d transport.Delivery) {
			handled.Add(1)
			_ = d.Ack(ctx)
		},
		OnPoison: poison.hook,
	})
	pub := func(subj, id, body string) { b.publishRaw(t, subj, id, body) }
	// Valid JSON, invalid field: an absolute URL.
	pub("salvo.req.m.b1", "bad-url",
		`{"v":1,"id":"bad-url","batch_id":"b1","custom_id":"c-1","model":"m","method":"POST","url":"https://evil.example/x","expires_at":"2030-01-01T00:00:00Z"}`)
	// Not JSON at all: the id comes from Nats-Msg-Id, model and batch from the subject.
	pub("salvo.req.m.b1", "bad-json", `{{{ nope`)
	// A valid request on the wrong model's subject.
	pub("salvo.req.other.b1", "wrong-subject",
		`{"v":1,"id":"wrong-subject","batch_id":"b1","model":"m","method":"POST","url":"/v1/x","expires_at":"2030-01-01T00:00:00Z"}`)
	// A result_subject inside salvo's own event namespace.
	pub("salvo.req.m.b1", "reserved-reply",
		`{"v":1,"id":"reserved-reply","batch_id":"b1","model":"m","method":"POST","url":"/v1/x","expires_at":"2030-01-01T00:00:00Z","result_subject":"salvo.evt.batch.b1"}`)
	// Not JSON, Nats-Msg-Id in the batch-scoped form: the id is its tail.
	pub("salvo.req.m.b1", "b1.scoped-json", `not json`)
	// Not even an id: reported all the same; the hook decides.
	pub("salvo.req.m.b1", "", `garbage`)

	waitFor(t, eventually, "the requests stream to empty", streamEmpty(t, b.js, "SALVO_REQUESTS"))
	require.Zero(t, handled.Load(), "a malformed message reached the handler")

	got := poison.byID()
	require.Len(t, got, 6)
	for id, field := range map[string]string{"bad-url": "url", "bad-json": "decode", "scoped-json": "decode", "wrong-subject": "model", "reserved-reply": "result_subject", "": "decode"} {
		p, ok := got[id]
		require.True(t, ok, id)
		require.Equal(t, queue.PoisonMalformed, p.Kind, id)
		require.Equal(t, "b1", p.Request.BatchID, id)
		require.Equal(t, "m", p.Request.Model, id)
		require.ErrorContains(t, p.Cause, field, id)
		require.Equal(t, uint64(1), p.Deliveries, id)
		require.Positive(t, p.StreamSeq, id)
		require.NotEmpty(t, p.Subject, id)
	}
	require.Equal(t, "c-1", got["bad-url"].Request.CustomID)
	require.Empty(t, got["reserved-reply"].Request.ResultSubject, "a refused result subject is not handed over")
}

func TestMalformedReportFailureRedelivers(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var poison poisonLog
	poison.fail.Store(true)
	consume(t, b.c, queue.ConsumeOptions{
		Slots:    newSlotTable(4).get,
		Handler:  func(ctx context.Context, d transport.Delivery) { _ = d.Ack(ctx) },
		OnPoison: poison.hook,
	})
	b.publishRaw(t, "salvo.req.m.b1", "retried", `nope`)
	waitFor(t, eventually, "a refused report", func() bool { return poison.calls.Load() >= 1 })
	require.Equal(t, uint64(1), streamMsgs(t, b.js, "SALVO_REQUESTS"), "removed without a report")
	poison.fail.Store(false)
	waitFor(t, eventually, "the requests stream to empty", streamEmpty(t, b.js, "SALVO_REQUESTS"))
	got := poison.all()
	require.Len(t, got, 1)
	require.Equal(t, "retried", got[0].Request.ID)
	require.GreaterOrEqual(t, got[0].Deliveries, uint64(2), "reported again on redelivery")
}

func TestMaxDeliveriesReportsPoisonMessage(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *queue.Config) { c.MaxDeliver = 3 })
	var deliveries atomic.Int32
	nakErrs := make(chan error, 10)
	var poison poisonLog
	consume(t, b.c, queue.ConsumeOptions{
		Slots: newSlotTable(4).get,
		Handler: func(ctx context.Context, d transport.Delivery) {
			deliveries.Add(1)
			nakErrs <- d.Nak(ctx, 0) // always fails: poison
		},
		OnPoison: poison.hook,
	})
	req := newRequest("poison-1", "m", "b")
	require.NoError(t, b.c.PublishRequest(ctx(t), req))
	waitFor(t, eventually, "the poison report", func() bool { return len(poison.all()) == 1 })
	p := poison.all()[0]
	require.Equal(t, queue.PoisonMaxDeliveries, p.Kind)
	require.Equal(t, uint64(3), p.Deliveries)
	require.NoError(t, p.Cause)
	require.Equal(t, req.ID, p.Request.ID)
	require.Equal(t, req.CustomID, p.Request.CustomID)
	require.Equal(t, "salvo.req.m.b", p.Subject)
	waitFor(t, eventually, "the requests stream to empty", streamEmpty(t, b.js, "SALVO_REQUESTS"))
	waitFor(t, eventually, "the advisories stream to empty", streamEmpty(t, b.js, "SALVO_ADVISORIES"))
	require.Equal(t, int32(3), deliveries.Load())
	for range 3 {
		require.NoError(t, <-nakErrs)
	}
}

// Without OnPoison the queue records nothing: it logs poison messages and
// removes them, publishing no result.
func TestPoisonWithoutHookIsRemoved(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *queue.Config) { c.MaxDeliver = 2 })
	consume(t, b.c, queue.ConsumeOptions{
		Slots:   newSlotTable(4).get,
		Handler: func(ctx context.Context, d transport.Delivery) { _ = d.Nak(ctx, 0) },
	})
	require.NoError(t, b.c.PublishRequest(ctx(t), newRequest("poison-2", "m", "b2")))
	b.publishRaw(t, "salvo.req.m.b2", "bad-2", `nope`)
	waitFor(t, eventually, "the requests stream to empty", streamEmpty(t, b.js, "SALVO_REQUESTS"))
	waitFor(t, eventually, "the advisories stream to empty", streamEmpty(t, b.js, "SALVO_ADVISORIES"))
	require.Zero(t, streamMsgs(t, b.js, "SALVO_RESULTS"), "a result was published")
}
