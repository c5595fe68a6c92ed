package queue_test

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/salvo-run/salvo/pkg/queue"
	"github.com/salvo-run/salvo/pkg/transport"
)

// consumerNames lists the durable consumers of the REQUESTS stream.
func consumerNames(t *testing.T, js jetstream.JetStream) []string {
	t.Helper()
	s, err := js.Stream(ctx(t), "SALVO_REQUESTS")
	require.NoError(t, err)
	var out []string
	names := s.ConsumerNames(ctx(t))
	for n := range names.Name() {
		out = append(out, n)
	}
	require.NoError(t, names.Err())
	return out
}

func TestJunkSubjectsGetNoConsumerAndAreRejected(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var poison poisonLog
	var handled atomic.Int32
	co := consume(t, b.c, queue.ConsumeOptions{
		Slots: newSlotTable(4).get,
		Handler: func(ctx context.Context, d transport.Delivery) {
			handled.Add(1)
			_ = d.Ack(ctx)
		},
		OnPoison: poison.hook,
	})
	pub := func(subj, id, body string) { b.publishRaw(t, subj, id, body) }
	// A model token that does not decode (bad escape), with a readable id.
	pub("salvo.req.bad_zz.b1", "junk-token",
		`{"v":1,"id":"junk-token","batch_id":"b1","model":"m","method":"POST","url":"/v1/x","expires_at":"2030-01-01T00:00:00Z"}`)
	// Too few tokens; the id from the header, batch from the body.
	pub("salvo.req.m", "junk-short", `{"batch_id":"b1"}`)
	// More junk than one discovery pass handles, on many undecodable tokens.
	for i := range 70 {
		pub("salvo.req.x_"+itoa(i%5)+"q.b1", "", `nope`)
	}
	waitFor(t, eventually, "the requests stream to empty", streamEmpty(t, b.js, "SALVO_REQUESTS"))
	require.Zero(t, handled.Load())
	require.Empty(t, co.Models(), "a junk subject got a fetch loop")
	require.Empty(t, consumerNames(t, b.js), "a junk subject got a durable consumer")

	idless := 0
	for _, p := range poison.all() {
		require.Equal(t, queue.PoisonMalformed, p.Kind)
		require.Zero(t, p.Deliveries, "a junk message is never delivered")
		require.Positive(t, p.StreamSeq)
		if p.Request.ID == "" {
			idless++
			require.Equal(t, "b1", p.Request.BatchID, "the batch from the subject")
		}
	}
	require.GreaterOrEqual(t, idless, 70)
	got := poison.byID()
	for id, field := range map[string]string{"junk-token": "model", "junk-short": "subject"} {
		p, ok := got[id]
		require.True(t, ok, id)
		require.Equal(t, "b1", p.Request.BatchID, id)
		require.ErrorContains(t, p.Cause, field, id)
	}
}

func TestJunkRecordFailureKeepsMessageForLater(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var poison poisonLog
	poison.fail.Store(true)
	consume(t, b.c, queue.ConsumeOptions{
		Slots:    newSlotTable(4).get,
		Handler:  func(ctx context.Context, d transport.Delivery) { _ = d.Ack(ctx) },
		OnPoison: poison.hook,
	})
	m := nats.NewMsg("salvo.req.bad_zz.b1")
	m.Data = []byte(`{"id":"kept"}`)
	_, err := b.js.PublishMsg(ctx(t), m)
	require.NoError(t, err)
	waitFor(t, eventually, "two refused reports", func() bool { return poison.calls.Load() >= 2 })
	require.Equal(t, uint64(1), streamMsgs(t, b.js, "SALVO_REQUESTS"), "deleted without a report")
	poison.fail.Store(false)
	waitFor(t, eventually, "the requests stream to empty", streamEmpty(t, b.js, "SALVO_REQUESTS"))
	require.Equal(t, "kept", poison.all()[0].Request.ID)
}
