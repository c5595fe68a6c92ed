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

// A model this worker cannot route gets no durable consumer: requests on
// 20 bogus model subjects are reported as PoisonUnrouted (and removed),
// while a model some other worker routes — its consumer exists — is left
// for that worker.
func TestUnroutedModelsGetNoConsumer(t *testing.T) {
	t.Parallel()
	b := setup(t)
	// Another worker routes "elsewhere": its consumer exists.
	_, err := b.c.EnsureModelConsumer(ctx(t), "elsewhere")
	require.NoError(t, err)
	var poison poisonLog
	var handled atomic.Int32
	co := consume(t, b.c, queue.ConsumeOptions{
		Slots:    newSlotTable(4).get,
		Routable: func(model string) bool { return model == "m" },
		Handler: func(ctx context.Context, d transport.Delivery) {
			handled.Add(1)
			_ = d.Ack(ctx)
		},
		OnPoison: poison.hook,
	})
	publishN(t, b.c, "ok", "m", "b1", 2)
	var bogus []string
	for i := range 20 {
		bogus = append(bogus, publishN(t, b.c, "bogus"+itoa(i), "bogus/model:"+itoa(i), "b1", 1)...)
	}
	publishN(t, b.c, "kept", "elsewhere", "b1", 1)

	waitFor(t, eventually, "the routed and the bogus requests to end", func() bool {
		return handled.Load() == 2 && len(poison.byID()) == 20
	})
	got := poison.byID()
	for _, id := range bogus {
		p, ok := got[id]
		require.True(t, ok, id)
		require.Equal(t, queue.PoisonUnrouted, p.Kind, id)
		require.Equal(t, "b1", p.Request.BatchID)
		require.Positive(t, p.StreamSeq)
		require.Zero(t, p.Deliveries)
	}
	elsewhere, err := b.c.ModelConsumerName("elsewhere")
	require.NoError(t, err)
	m, err := b.c.ModelConsumerName("m")
	require.NoError(t, err)
	require.ElementsMatch(t, []string{elsewhere, m}, consumerNames(t, b.js), "a bogus model got a durable consumer")
	require.Equal(t, []string{"m"}, co.Models())
	holds(t, 5*b.cfg.DiscoveryInterval*2, b.cfg.DiscoveryInterval, "the routed-elsewhere request stays queued", func() bool {
		_, reported := poison.byID()["kept-0"]
		return !reported && streamMsgs(t, b.js, "SALVO_REQUESTS") == 1
	})
}
