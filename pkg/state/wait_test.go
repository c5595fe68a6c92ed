package state_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/salvo-run/salvo/internal/testredis"
	"github.com/salvo-run/salvo/pkg/lifecycle"
	"github.com/salvo-run/salvo/pkg/ratelimit"
	"github.com/salvo-run/salvo/pkg/state"
)

// replicated is a bundle whose store writes to a primary with one replica
// and waits for it (wait_replicas 1), and a store reading the replica.
type replicated struct {
	*bundle
	replica   *testredis.Server
	onReplica *state.Store
}

func setupReplicated(t *testing.T, timeout time.Duration) *replicated {
	t.Helper()
	// A password: the replica authenticates to the primary as clients do.
	primary := testredis.New(t, testredis.WithPassword("pw-primary"))
	replica := testredis.NewReplica(t, primary)
	clk := &fakeClock{t: base}
	cfg := state.Config{Prefix: primary.Prefix, Clock: clk.Now, LeaseTTL: 30 * time.Second, WaitReplicas: 1, WaitTimeout: timeout}
	st, err := state.New(primary.Client, cfg)
	require.NoError(t, err)
	read := cfg
	read.WaitReplicas = 0
	onReplica, err := state.New(replica.Client, read)
	require.NoError(t, err)
	return &replicated{bundle: &bundle{redis: primary, clock: clk, store: st, cfg: st.Config()}, replica: replica, onReplica: onReplica}
}

// whileReplicaPaused pauses the replica, runs write, and resumes the
// replica only once the primary holds a client blocked in WAIT. A write
// that returns while the replica is paused fails the test: it answered
// before any replica had it.
func (r *replicated) whileReplicaPaused(t *testing.T, what string, write func(context.Context) error) {
	t.Helper()
	ctx := ctxT(t)
	r.replica.Pause()
	done := make(chan error, 1)
	go func() { done <- write(ctx) }()
	poll := time.NewTicker(5 * time.Millisecond)
	defer poll.Stop()
	for deadline := time.Now().Add(10 * time.Second); ; {
		select {
		case err := <-done:
			r.replica.Resume()
			require.Failf(t, "answered before the replica had it", "%s returned (%v) while the only replica was paused", what, err)
		case <-poll.C:
		}
		info, err := r.redis.Client.Info(ctx, "clients").Result()
		require.NoError(t, err)
		if strings.Contains(info, "blocked_clients:1") {
			break
		}
		require.True(t, time.Now().Before(deadline), "%s: no WAIT blocked on the primary within 10s", what)
	}
	r.replica.Resume()
	require.NoError(t, <-done, what)
}

// commandCalls is how often the server ran cmd (INFO commandstats).
func commandCalls(t *testing.T, c redis.UniversalClient, cmd string) string {
	t.Helper()
	info, err := c.Info(ctxT(t), "commandstats").Result()
	require.NoError(t, err)
	for line := range strings.SplitSeq(info, "\r\n") {
		if rest, ok := strings.CutPrefix(line, "cmdstat_"+cmd+":calls="); ok {
			n, _, _ := strings.Cut(rest, ",")
			return n
		}
	}
	return ""
}

// With wait_replicas 1, Complete and MarkPublished return only once the
// replica has their writes: read from the replica right after, the
// request is completed, then published.
func TestWaitReplicasWritesAreOnTheReplicaWhenTheyReturn(t *testing.T) {
	t.Parallel()
	r := setupReplicated(t, 10*time.Second)
	ctx := ctxT(t)
	r.createBatch(t, "b1", 1)
	p := r.claim(t, request("r1", "b1"), "w")

	var tr lifecycle.Transition
	r.whileReplicaPaused(t, "Complete", func(ctx context.Context) (err error) {
		tr, err = r.store.Complete(ctx, p, state.Outcome{Status: 200, Result: []byte(`{"id":"x"}`)})
		return err
	})
	require.True(t, tr.Applied)
	rec, err := r.onReplica.Request(ctx, p.Ref)
	require.NoError(t, err)
	require.Equal(t, lifecycle.StateCompleted, rec.State, "the replica has the terminal write")
	require.False(t, rec.Published)

	r.whileReplicaPaused(t, "MarkPublished", func(ctx context.Context) error {
		_, err := r.store.MarkPublished(ctx, []lifecycle.Ref{p.Ref})
		return err
	})
	rec, err = r.onReplica.Request(ctx, p.Ref)
	require.NoError(t, err)
	require.True(t, rec.Published, "the replica has the published mark")
	bt, err := r.onReplica.Batch(ctx, "b1")
	require.NoError(t, err)
	require.Equal(t, int64(1), bt.Counts.Completed)
	require.NotEmpty(t, commandCalls(t, r.redis.Client, "wait"))
}

// A write the replica does not confirm within wait_timeout fails as
// unavailable (ErrNotReplicated), though it landed on the primary: its
// effect is unknown to the caller. A retry that finds the write done
// waits for the replica as well, and succeeds once the replica is back.
func TestWaitReplicasMissedIsUnavailable(t *testing.T) {
	t.Parallel()
	r := setupReplicated(t, 200*time.Millisecond)
	ctx := ctxT(t)
	r.createBatch(t, "b1", 2)
	p := r.claim(t, request("r1", "b1"), "w")
	r.replica.Pause()
	t.Cleanup(r.replica.Resume)

	out := state.Outcome{Status: 200, Result: []byte(`{"id":"x"}`)}
	_, err := r.store.Complete(ctx, p, out)
	require.ErrorIs(t, err, state.ErrUnavailable)
	require.ErrorIs(t, err, state.ErrNotReplicated)
	require.False(t, errors.Is(err, context.DeadlineExceeded), "the WAIT timed out, not the caller's context: %v", err)
	require.Equal(t, string(lifecycle.StateCompleted), r.field(t, p.Ref, "state"), "the write reached the primary")

	_, err = r.store.Complete(ctx, p, out)
	require.ErrorIs(t, err, state.ErrNotReplicated, "a retry finding the write done still waits for it")
	_, err = r.store.Claim(ctx, state.ClaimArgs{Request: request("r2", "b1"), Owner: "w", Delivery: 1, Start: true})
	require.ErrorIs(t, err, state.ErrNotReplicated)
	_, err = r.store.MarkPublished(ctx, []lifecycle.Ref{p.Ref})
	require.ErrorIs(t, err, state.ErrNotReplicated)
	// Budgets never wait: a lost reservation costs no result.
	limits := ratelimit.Amounts{ratelimit.Requests: 10}
	adm, err := r.store.AdmitBudget(ctx, r.admitArgs("k|m", limits, ratelimit.Cost{}.Amounts(), 0))
	require.NoError(t, err, "a budget reservation does not wait for the replica")
	require.True(t, adm.OK)

	r.replica.Resume()
	tr, err := r.store.Complete(ctx, p, out)
	require.NoError(t, err)
	require.False(t, tr.Applied, "the first attempt's write stands")
	require.Equal(t, lifecycle.StateCompleted, tr.State)
	rec, err := r.onReplica.Request(ctx, p.Ref)
	require.NoError(t, err)
	require.Equal(t, lifecycle.StateCompleted, rec.State)
}

// wait_replicas 0 sends no WAIT; on a server without replicas, 1 makes
// every write fail as not replicated.
func TestWaitReplicasOffSendsNoWait(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := ctxT(t)
	b.createBatch(t, "b1", 2)
	p := b.claim(t, request("r1", "b1"), "w")
	_, err := b.store.Complete(ctx, p, state.Outcome{Status: 200})
	require.NoError(t, err)
	b.publish(t, p.Ref)
	require.Empty(t, commandCalls(t, b.redis.Client, "wait"))

	cfg := b.cfg
	cfg.WaitReplicas, cfg.WaitTimeout = 1, 20*time.Millisecond
	st, err := state.New(b.redis.Client, cfg)
	require.NoError(t, err)
	_, err = st.Claim(ctx, state.ClaimArgs{Request: request("r2", "b1"), Owner: "w", Delivery: 1, Start: true})
	require.ErrorIs(t, err, state.ErrNotReplicated)
	require.Equal(t, "1", commandCalls(t, b.redis.Client, "wait"))
}

// WAIT has no key: a Cluster client would send it to any node.
func TestWaitReplicasRefusedWithCluster(t *testing.T) {
	t.Parallel()
	c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{"127.0.0.1:1"}})
	t.Cleanup(func() { _ = c.Close() })
	_, err := state.New(c, state.Config{WaitReplicas: 1})
	require.ErrorIs(t, err, state.ErrInvalidConfig)
	require.ErrorContains(t, err, "wait_replicas")
	require.ErrorContains(t, err, "Cluster")
	_, err = state.New(c, state.Config{})
	require.NoError(t, err)
}
