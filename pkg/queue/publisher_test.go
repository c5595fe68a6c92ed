package queue_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/salvo-run/salvo/pkg/queue"
)

func TestDuplicatePublishesStoreOneMessage(t *testing.T) {
	t.Parallel()
	b := setup(t)
	req := newRequest("dup-1", "gpt-4o", "batch-1")
	for range 3 {
		require.NoError(t, b.c.PublishRequest(ctx(t), req))
	}
	p := b.c.NewPublisher()
	for range 3 {
		require.NoError(t, p.Publish(ctx(t), req))
	}
	require.NoError(t, p.Flush(ctx(t)))
	require.Equal(t, uint64(1), streamMsgs(t, b.js, "SALVO_REQUESTS"))
}

func TestPublisherBoundedWindowDeliversEverything(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *queue.Config) { c.PublishWindow = 8 })
	publishN(t, b.c, "w", "meta-llama/Llama-3.1-8B:free", "b", 300)
	require.Equal(t, uint64(300), streamMsgs(t, b.js, "SALVO_REQUESTS"))

	// Subject: model and batch encoded as tokens; Nats-Msg-Id the batch
	// token and the id.
	s, err := b.js.Stream(ctx(t), "SALVO_REQUESTS")
	require.NoError(t, err)
	m, err := s.GetMsg(ctx(t), 1)
	require.NoError(t, err)
	require.Equal(t, "salvo.req.meta-llama_2FLlama-3_2E1-8B_3Afree.b", m.Subject)
	require.Equal(t, "b.w-0", m.Header.Get("Nats-Msg-Id"))
}

// Publish dedup is scoped by batch: the same request id in two batches (and
// batchless) is three requests; a repeat inside one batch is still one.
func TestSameIDInAnotherBatchIsNotADuplicate(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for _, batch := range []string{"batch-a", "batch-b", "", "batch-a"} {
		require.NoError(t, b.c.PublishRequest(ctx(t), newRequest("same-id", "m", batch)))
	}
	require.Equal(t, uint64(3), streamMsgs(t, b.js, "SALVO_REQUESTS"))
	s, err := b.js.Stream(ctx(t), "SALVO_REQUESTS")
	require.NoError(t, err)
	for seq, want := range map[uint64]string{1: "batch-a.same-id", 2: "batch-b.same-id", 3: "_.same-id"} {
		m, err := s.GetMsg(ctx(t), seq)
		require.NoError(t, err)
		require.Equal(t, want, m.Header.Get("Nats-Msg-Id"))
	}
}

func TestMsgIDIsBatchTokenDotID(t *testing.T) {
	for _, tt := range []struct{ batch, id, want string }{
		{"b1", "r1", "b1.r1"},
		{"", "r1", "_.r1"},
		{"batch_1/x.y", "a.b/c:d", "batch_5F1_2Fx_2Ey.a.b/c:d"},
	} {
		require.Equal(t, tt.want, queue.MsgID(tt.batch, tt.id))
	}
}

func TestPublishRejectsInvalidRequest(t *testing.T) {
	t.Parallel()
	b := setup(t)
	bad := newRequest("x", "m", "")
	bad.URL = "https://evil.example/v1"
	err := b.c.PublishRequest(ctx(t), bad)
	require.ErrorIs(t, err, queue.ErrInvalidRequest)
	require.Contains(t, err.Error(), "url")
	require.ErrorIs(t, b.c.NewPublisher().Publish(ctx(t), bad), queue.ErrInvalidRequest)
	require.Equal(t, uint64(0), streamMsgs(t, b.js, "SALVO_REQUESTS"))
}

func TestPublisherReportsFailedIDs(t *testing.T) {
	t.Parallel()
	b := setup(t)
	// Remove the stream: every publish now fails (no responders after retries).
	require.NoError(t, b.js.DeleteStream(ctx(t), "SALVO_REQUESTS"))
	p := b.c.NewPublisher()
	require.NoError(t, p.Publish(ctx(t), newRequest("lost-1", "m", "")))
	err := p.Flush(ctx(t))
	require.ErrorIs(t, err, queue.ErrPublish)
	require.Contains(t, err.Error(), "lost-1")
}
