package queue_test

import (
	"encoding/json"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/salvo-run/salvo/pkg/queue"
)

// Every stream and the object store are created with byte and message
// limits: REQUESTS refuses when full, RESULTS and ADVISORIES drop their
// oldest.
func TestProvisionBoundsEveryStream(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *queue.Config) {
		c.RequestsMaxMsgs, c.RequestsMaxBytes = 1000, 1<<20
		c.ResultsMaxMsgs, c.ResultsMaxBytes = 2000, 2<<20
		c.AdvisoriesMaxMsgs, c.AdvisoriesMaxBytes = 300, 3<<20
		c.BodiesMaxBytes = 4 << 20
	})
	for _, want := range []struct {
		stream  string
		msgs    int64
		bytes   int64
		discard jetstream.DiscardPolicy
	}{
		{"SALVO_REQUESTS", 1000, 1 << 20, jetstream.DiscardNew},
		{"SALVO_RESULTS", 2000, 2 << 20, jetstream.DiscardOld},
		{"SALVO_ADVISORIES", 300, 3 << 20, jetstream.DiscardOld},
		{"OBJ_SALVO_BODIES", -1, 4 << 20, jetstream.DiscardNew},
	} {
		s, err := b.js.Stream(ctx(t), want.stream)
		require.NoError(t, err, want.stream)
		cfg := s.CachedInfo().Config
		require.Equal(t, want.msgs, cfg.MaxMsgs, want.stream)
		require.Equal(t, want.bytes, cfg.MaxBytes, want.stream)
		require.Equal(t, want.discard, cfg.Discard, want.stream)
	}
}

func TestStreamLimitDefaults(t *testing.T) {
	t.Parallel()
	c := queue.Config{}.WithDefaults()
	require.Equal(t, int64(1_000_000), c.RequestsMaxMsgs)
	require.Equal(t, int64(1<<30), c.RequestsMaxBytes)
	require.Equal(t, int64(2_000_000), c.ResultsMaxMsgs)
	require.Equal(t, int64(1<<30), c.ResultsMaxBytes)
	require.Equal(t, int64(100_000), c.AdvisoriesMaxMsgs)
	require.Equal(t, int64(64<<20), c.AdvisoriesMaxBytes)
	require.Equal(t, int64(1<<30), c.BodiesMaxBytes)
}

// A REQUESTS stream at its message limit refuses the next publish with an
// error that names the limit, through PublishRequest and through a
// Publisher's Flush, and keeps every message it already holds.
func TestAFullRequestsStreamRefusesPublishesAndKeepsWhatIsQueued(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *queue.Config) { c.RequestsMaxMsgs = 5 })
	ids := publishN(t, b.c, "full", "gpt-4o", "b1", 5)

	err := b.c.PublishRequest(ctx(t), newRequest("over-1", "gpt-4o", "b1"))
	require.ErrorIs(t, err, queue.ErrStreamFull)
	require.ErrorContains(t, err, "queue: SALVO_REQUESTS is full (max_msgs 5")
	var full *queue.StreamFullError
	require.ErrorAs(t, err, &full)
	require.Equal(t, "requests_max_msgs", full.Key)

	p := b.c.NewPublisher()
	for _, id := range []string{"over-2", "over-3"} {
		require.NoError(t, p.Publish(ctx(t), newRequest(id, "gpt-4o", "b1")))
	}
	err = p.Flush(ctx(t))
	require.ErrorIs(t, err, queue.ErrPublish)
	require.ErrorIs(t, err, queue.ErrStreamFull)
	require.ErrorContains(t, err, "over-2")
	require.ErrorContains(t, err, "SALVO_REQUESTS is full (max_msgs 5")

	requireQueued(t, b, ids)
}

// The byte limit refuses the same way.
func TestARequestsStreamAtItsByteLimitRefusesPublishes(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *queue.Config) { c.RequestsMaxBytes = 2000 })
	var (
		ids []string
		err error
	)
	for i := range 50 {
		id := "big-" + itoa(i)
		if err = b.c.PublishRequest(ctx(t), newRequest(id, "gpt-4o", "b1")); err != nil {
			break
		}
		ids = append(ids, id)
	}
	require.ErrorIs(t, err, queue.ErrStreamFull)
	require.ErrorContains(t, err, "queue: SALVO_REQUESTS is full (max_bytes 2000")
	require.NotEmpty(t, ids)
	requireQueued(t, b, ids)
}

// requireQueued checks that REQUESTS holds exactly ids, in order from its
// first sequence: nothing queued was dropped to make room.
func requireQueued(t *testing.T, b *bundle, ids []string) {
	t.Helper()
	s, err := b.js.Stream(ctx(t), "SALVO_REQUESTS")
	require.NoError(t, err)
	info, err := s.Info(ctx(t))
	require.NoError(t, err)
	require.Equal(t, uint64(len(ids)), info.State.Msgs)
	require.Equal(t, uint64(1), info.State.FirstSeq, "the oldest message is still there")
	for i, id := range ids {
		m, err := s.GetMsg(ctx(t), uint64(i+1))
		require.NoError(t, err)
		var got struct {
			ID string `json:"id"`
		}
		require.NoError(t, json.Unmarshal(m.Data, &got))
		require.Equal(t, id, got.ID)
	}
}
