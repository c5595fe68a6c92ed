package queue_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/salvo-run/salvo/pkg/lifecycle"
	"github.com/salvo-run/salvo/pkg/queue"
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
	b := setup(t)
	var mu sync.Mutex
	hooked := map[string]bool{}
	var handled atomic.Int32
	co := consume(t, b.c, queue.ConsumeOptions{
		Slots: newSlotTable(4).get,
		Handler: func(ctx context.Context, d *queue.Delivery) {
			handled.Add(1)
			_ = d.Ack(ctx)
		},
		OnMalformed: func(_ context.Context, res *lifecycle.Result) (bool, error) {
			mu.Lock()
			hooked[res.ID] = true
			mu.Unlock()
			return true, nil
		},
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
	require.Eventually(t, func() bool { return streamMsgs(t, b.js, "SALVO_REQUESTS") == 0 }, eventually, tick)
	require.Zero(t, handled.Load())
	require.Empty(t, co.Models(), "a junk subject got a fetch loop")
	require.Empty(t, consumerNames(t, b.js), "a junk subject got a durable consumer")

	got := map[string]*lifecycle.Result{}
	require.Eventually(t, func() bool {
		got = map[string]*lifecycle.Result{}
		require.NoError(t, b.c.ReplayResults(ctx(t), "b1", func(r *lifecycle.Result) error {
			got[r.ID] = r
			return nil
		}))
		return len(got) == 2
	}, eventually, tick)
	for id, field := range map[string]string{"junk-token": "model", "junk-short": "subject"} {
		r := got[id]
		require.NotNil(t, r, id)
		require.Equal(t, lifecycle.StateFailed, r.State)
		require.Equal(t, lifecycle.CodeMalformedMessage, r.Error.Code)
		require.Contains(t, r.Error.Message, field, id)
	}
	mu.Lock()
	defer mu.Unlock()
	require.True(t, hooked["junk-token"] && hooked["junk-short"], "OnMalformed not called: %v", hooked)
}

func TestJunkRecordFailureKeepsMessageForLater(t *testing.T) {
	b := setup(t)
	var fail atomic.Bool
	fail.Store(true)
	var calls atomic.Int32
	consume(t, b.c, queue.ConsumeOptions{
		Slots:   newSlotTable(4).get,
		Handler: func(ctx context.Context, d *queue.Delivery) { _ = d.Ack(ctx) },
		OnMalformed: func(context.Context, *lifecycle.Result) (bool, error) {
			calls.Add(1)
			if fail.Load() {
				return false, errors.New("redis down")
			}
			return true, nil
		},
	})
	m := nats.NewMsg("salvo.req.bad_zz.b1")
	m.Data = []byte(`{"id":"kept"}`)
	_, err := b.js.PublishMsg(ctx(t), m)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return calls.Load() >= 2 }, eventually, tick)
	require.Equal(t, uint64(1), streamMsgs(t, b.js, "SALVO_REQUESTS"), "deleted without a record")
	fail.Store(false)
	require.Eventually(t, func() bool { return streamMsgs(t, b.js, "SALVO_REQUESTS") == 0 }, eventually, tick)
}
