package queue_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/salvo-run/salvo/pkg/lifecycle"
	"github.com/salvo-run/salvo/pkg/queue"
)

func TestMalformedMessageRecordedAndRemoved(t *testing.T) {
	b := setup(t)
	var handled atomic.Int32
	consume(t, b.c, queue.ConsumeOptions{
		Slots: newSlotTable(4).get,
		Handler: func(ctx context.Context, d *queue.Delivery) {
			handled.Add(1)
			_ = d.Ack(ctx)
		},
	})
	pub := func(subj, id, body string) { b.publishRaw(t, subj, id, body) }
	// Valid JSON, invalid field: an absolute URL.
	pub("salvo.req.m.b1", "bad-url",
		`{"v":1,"id":"bad-url","batch_id":"b1","model":"m","method":"POST","url":"https://evil.example/x","expires_at":"2030-01-01T00:00:00Z"}`)
	// Not JSON at all: the id comes from Nats-Msg-Id, the batch from the subject.
	pub("salvo.req.m.b1", "bad-json", `{{{ nope`)
	// A valid request on the wrong model's subject.
	pub("salvo.req.other.b1", "wrong-subject",
		`{"v":1,"id":"wrong-subject","batch_id":"b1","model":"m","method":"POST","url":"/v1/x","expires_at":"2030-01-01T00:00:00Z"}`)
	// A result_subject inside salvo's own event namespace.
	pub("salvo.req.m.b1", "reserved-reply",
		`{"v":1,"id":"reserved-reply","batch_id":"b1","model":"m","method":"POST","url":"/v1/x","expires_at":"2030-01-01T00:00:00Z","result_subject":"salvo.evt.batch.b1"}`)
	// Not even an id: logged and removed.
	pub("salvo.req.m.b1", "", `garbage`)

	require.Eventually(t, func() bool { return streamMsgs(t, b.js, "SALVO_REQUESTS") == 0 }, eventually, tick)
	require.Equal(t, int32(0), handled.Load(), "a malformed message reached the handler")

	got := map[string]*lifecycle.Result{}
	require.Eventually(t, func() bool {
		got = map[string]*lifecycle.Result{}
		require.NoError(t, b.c.ReplayResults(ctx(t), "b1", func(r *lifecycle.Result) error {
			got[r.ID] = r
			return nil
		}))
		return len(got) == 4
	}, eventually, tick)
	for id, field := range map[string]string{"bad-url": "url", "bad-json": "decode", "wrong-subject": "model", "reserved-reply": "result_subject"} {
		r := got[id]
		require.NotNil(t, r, id)
		require.Equal(t, lifecycle.StateFailed, r.State)
		require.Equal(t, "b1", r.BatchID)
		require.Equal(t, lifecycle.CodeMalformedMessage, r.Error.Code)
		require.Contains(t, r.Error.Message, field, id)
	}
}

func TestMaxDeliveriesEndsPoisonMessage(t *testing.T) {
	b := setup(t, func(c *queue.Config) { c.MaxDeliver = 3 })
	var deliveries atomic.Int32
	var mu sync.Mutex
	called := map[string]uint64{}
	consume(t, b.c, queue.ConsumeOptions{
		Slots: newSlotTable(4).get,
		Handler: func(ctx context.Context, d *queue.Delivery) {
			deliveries.Add(1)
			require.NoError(t, d.Nak(ctx, 0)) // always fails: poison
		},
		OnMaxDeliveries: func(_ context.Context, req *lifecycle.Request, n uint64) error {
			mu.Lock()
			called[req.ID] = n
			mu.Unlock()
			return nil
		},
	})
	require.NoError(t, b.c.PublishRequest(ctx(t), newRequest("poison-1", "m", "b")))
	require.Eventually(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(called) == 1 }, eventually, tick)
	mu.Lock()
	require.Equal(t, uint64(3), called["poison-1"])
	mu.Unlock()
	require.Eventually(t, func() bool { return streamMsgs(t, b.js, "SALVO_REQUESTS") == 0 }, eventually, tick)
	require.Eventually(t, func() bool { return streamMsgs(t, b.js, "SALVO_ADVISORIES") == 0 }, eventually, tick)
	require.Equal(t, int32(3), deliveries.Load())
}

func TestMaxDeliveriesDefaultPublishesFailedResult(t *testing.T) {
	b := setup(t, func(c *queue.Config) { c.MaxDeliver = 2 })
	consume(t, b.c, queue.ConsumeOptions{
		Slots:   newSlotTable(4).get,
		Handler: func(ctx context.Context, d *queue.Delivery) { _ = d.Nak(ctx, 0) },
	})
	require.NoError(t, b.c.PublishRequest(ctx(t), newRequest("poison-2", "m", "b2")))
	var got *lifecycle.Result
	require.Eventually(t, func() bool {
		require.NoError(t, b.c.ReplayResults(ctx(t), "b2", func(r *lifecycle.Result) error { got = r; return nil }))
		return got != nil
	}, eventually, tick)
	require.Equal(t, "poison-2", got.ID)
	require.Equal(t, lifecycle.CodeMaxDeliveries, got.Error.Code)
	require.Eventually(t, func() bool { return streamMsgs(t, b.js, "SALVO_REQUESTS") == 0 }, eventually, tick)
}
