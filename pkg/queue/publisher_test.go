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

	// Subject: model and batch encoded as tokens; id as Nats-Msg-Id.
	s, err := b.js.Stream(ctx(t), "SALVO_REQUESTS")
	require.NoError(t, err)
	m, err := s.GetMsg(ctx(t), 1)
	require.NoError(t, err)
	require.Equal(t, "salvo.req.meta-llama_2FLlama-3_2E1-8B_3Afree.b", m.Subject)
	require.Equal(t, "w-0", m.Header.Get("Nats-Msg-Id"))
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
