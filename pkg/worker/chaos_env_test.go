package worker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/salvo-run/salvo/internal/testnats"
	"github.com/salvo-run/salvo/internal/testredis"
	"github.com/salvo-run/salvo/internal/testupstream"
	"github.com/salvo-run/salvo/pkg/lifecycle"
	"github.com/salvo-run/salvo/pkg/queue"
	"github.com/salvo-run/salvo/pkg/state"
)

// newChaosEnv is newEnv for the exactly-once run: the chaos upstream, and
// streams provisioned with the run's AckWait and shortened duplicate
// window, the settings its worker processes start with (they refuse
// streams whose settings differ from theirs).
func newChaosEnv(t *testing.T) *env {
	t.Helper()
	e := &env{t: t, redis: testredis.New(t), nats: testnats.New(t)}
	e.prefix = e.redis.Prefix
	e.mock = testupstream.New(t, chaosUpstream)
	rdb := redis.NewClient(&redis.Options{Addr: e.redis.Addr, ContextTimeoutEnabled: true})
	t.Cleanup(func() { _ = rdb.Close() })
	var err error
	e.store, err = state.New(rdb, state.Config{Prefix: e.prefix, LeaseTTL: chaosLeaseTTL, MaxReclaims: chaosMaxReclaims})
	require.NoError(t, err)
	qc := e.queueConfig(chaosAckWait)
	qc.DuplicateWindow = chaosDupWindow
	e.q, err = queue.New(e.nats.Connect(), qc, zerolog.Nop())
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, e.q.Provision(ctx))
	e.js, err = jetstream.New(e.nats.Connect())
	require.NoError(t, err)
	return e
}

// chaosConfig is the YAML config of a worker process of the exactly-once run.
func (e *env) chaosConfig() string {
	return fmt.Sprintf(`nats_url: %s
redis_url: %s
prefix: %s
http_addr: 127.0.0.1:0
log_level: warn
streams:
  ack_wait: %s
  duplicate_window: %s
lease:
  ttl: %s
  max_reclaims: %d
upstream:
  default:
    base_url: %s
  transport_backoff: 20ms
retry:
  backoff: 50ms
  max_backoff: 500ms
concurrency:
  default: %d
heartbeat_interval: %s
shutdown_grace: 1s
`, e.nats.URL(), e.redis.URL(), e.prefix, chaosAckWait, chaosDupWindow, chaosLeaseTTL, chaosMaxReclaims,
		e.mock.URL(), chaosConcurrency, chaosHeartbeat)
}

// startChaosChild runs cmd/worker with chaosConfig.
func (e *env) startChaosChild(t *testing.T) *child {
	t.Helper()
	return runChild(t, e.chaosConfig())
}

// resultMessages reads every message stored on the batch's result subject,
// in stream order, and groups the decoded results by request id: a repeat
// is kept, not skipped (unlike queue.ReplayResults).
func (e *env) resultMessages(t *testing.T, batchID string) map[string][]lifecycle.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	subj := e.q.ResultSubject(batchID)
	stored := e.storedOn(t, subj)
	cons, err := e.js.OrderedConsumer(ctx, e.q.ResultsStream(), jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{subj},
	})
	require.NoError(t, err)
	out := map[string][]lifecycle.Result{}
	for read := uint64(0); read < stored; {
		batch, err := cons.Fetch(int(min(stored-read, 256)), jetstream.FetchMaxWait(5*time.Second))
		require.NoError(t, err)
		got := 0
		for msg := range batch.Messages() {
			got++
			var r lifecycle.Result
			require.NoError(t, json.Unmarshal(msg.Data(), &r), "result message %d of %s", read+uint64(got), subj)
			require.NotEmpty(t, r.ID, "result message %d of %s has no id", read+uint64(got), subj)
			out[r.ID] = append(out[r.ID], r)
		}
		require.NoError(t, batch.Error())
		require.Positive(t, got, "read %d of the %d messages on %s, then none arrived", read, stored, subj)
		read += uint64(got)
	}
	return out
}

// streamState is the state of a stream.
func (e *env) streamState(t *testing.T, name string) jetstream.StreamState {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := e.js.Stream(ctx, name)
	require.NoError(t, err)
	info, err := s.Info(ctx)
	require.NoError(t, err)
	return info.State
}

// lastStored is when the stream stored its last message.
func (e *env) lastStored(t *testing.T, name string) time.Time {
	t.Helper()
	return e.streamState(t, name).LastTime
}

// streamLastSeq is the sequence of the last message the stream stored.
func (e *env) streamLastSeq(t *testing.T, name string) uint64 {
	t.Helper()
	return e.streamState(t, name).LastSeq
}

// streamMsgs is the number of messages the stream holds.
func (e *env) streamMsgs(t *testing.T, name string) uint64 {
	t.Helper()
	return e.streamState(t, name).Msgs
}
