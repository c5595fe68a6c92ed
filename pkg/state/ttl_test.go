package state_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/salvo-run/salvo/pkg/lifecycle"
	"github.com/salvo-run/salvo/pkg/state"
)

// ttlTolerance absorbs the real time that passes between a script's PEXPIRE
// and the test's PTTL (the scripts measure from the fake clock, Redis
// counts down in real time).
const ttlTolerance = 5 * time.Second

// ttlWalk is a store whose every key the test checks after each write.
type ttlWalk struct {
	t         *testing.T
	b         *bundle
	retention time.Duration
	// ceiling bounds every key's TTL: the latest deadline of the walk plus
	// retention, measured from the clock's start.
	ceiling time.Duration
}

// key names a key of the test's prefix (the layout of keys.go).
func (w *ttlWalk) key(tag, rest string) string {
	return w.b.redis.Prefix + ":{" + tag + "}:" + rest
}

// live is the TTL a key of something due at deadline gets when written now.
func (w *ttlWalk) live(deadline time.Time) time.Duration {
	return deadline.Add(w.retention).Sub(w.b.clock.Now())
}

// indexes are the store's two keys that hold many batches (the list and
// the sweep index) and so have no TTL of their own: their members leave
// them instead (ListBatches drops the ids whose batch is gone, DropLive
// the batches the sweep is done with).
func (w *ttlWalk) indexes() map[string]bool {
	p := w.b.redis.Prefix
	return map[string]bool{p + ":batches:created": true, p + ":batches:live": true}
}

// check scans every key under the prefix (so a key nobody thought of is
// caught too): each but the indexes has a TTL in (0, ceiling], and each
// key in want has the TTL given there, within ttlTolerance.
func (w *ttlWalk) check(step string, want map[string]time.Duration) {
	w.t.Helper()
	ctx := ctxT(w.t)
	c := w.b.redis.Client
	seen := map[string]bool{}
	iter := c.Scan(ctx, 0, w.b.redis.Prefix+":*", 100).Iterator()
	for iter.Next(ctx) {
		k := iter.Val()
		seen[k] = true
		if w.indexes()[k] {
			continue
		}
		ttl, err := c.PTTL(ctx, k).Result()
		require.NoError(w.t, err)
		require.Positive(w.t, ttl, "%s: key %s has no TTL (%v)", step, k, ttl)
		require.LessOrEqual(w.t, ttl, w.ceiling, "%s: key %s outlives every deadline plus retention", step, k)
		if d, ok := want[k]; ok {
			require.LessOrEqual(w.t, ttl, d, "%s: key %s", step, k)
			require.Greater(w.t, ttl, d-ttlTolerance, "%s: key %s", step, k)
		}
	}
	require.NoError(w.t, iter.Err())
	for k := range want {
		require.True(w.t, seen[k], "%s: key %s is missing (keys: %s)", step, k, strings.Join(keysOf(seen), " "))
	}
}

func keysOf(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// Every key the store writes expires: a batch's keys (its hash, its lease
// index, the records of its requests that are not terminal yet) when the
// batch's expires_at plus retention has passed, a batchless request's record
// (or one of a batch without a record) when its own expires_at plus
// retention has passed, terminal records and finalized batches retention
// after they ended, model slots with their last holder. The TTLs are
// measured from the clock the store is given, not the server's.
func TestEveryKeyExpiresAfterItsDeadlinePlusRetention(t *testing.T) {
	t.Parallel()
	const retention = 2 * time.Hour
	b := setup(t, func(c *state.Config) { c.Retention = retention })
	ctx := ctxT(t)
	batchExp := base.Add(24 * time.Hour) // createBatch
	w := &ttlWalk{t: t, b: b, retention: retention, ceiling: batchExp.Add(retention).Sub(base)}

	b.createBatch(t, "b1", 6)
	w.check("create batch", map[string]time.Duration{w.key("b1", "batch"): w.live(batchExp)})

	// later writes measure from their own now
	b.clock.Advance(time.Hour)
	p1 := b.claim(t, request("r1", "b1"), "w1")
	w.check("claim", map[string]time.Duration{
		w.key("b1", "req:r1"): w.live(batchExp),
		w.key("b1", "leases"): w.live(batchExp),
	})

	require.NoError(t, b.store.Refresh(ctx, []lifecycle.Held{p1.Held()})[0])
	w.check("refresh", map[string]time.Duration{w.key("b1", "req:r1"): w.live(batchExp)})

	_, err := b.store.Retry(ctx, p1, failure(lifecycle.CodeRetriableStatus, 503), b.clock.Now().Add(time.Second))
	require.NoError(t, err)
	w.check("retry", map[string]time.Duration{w.key("b1", "req:r1"): w.live(batchExp)})

	p2 := b.claim(t, request("r2", "b1"), "w1")
	_, err = b.store.Complete(ctx, p2, state.Outcome{Status: 200, Result: []byte(`{"id":"r2"}`)})
	require.NoError(t, err)
	w.check("complete", map[string]time.Duration{w.key("b1", "req:r2"): retention})
	require.NoError(t, errOf(b.store.MarkPublished(ctx, []lifecycle.Ref{p2.Ref})))
	w.check("mark published", map[string]time.Duration{w.key("b1", "req:r2"): retention})

	_, err = b.store.CancelRequest(ctx, lifecycle.Ref{ID: "r3", BatchID: "b1"})
	require.NoError(t, err)
	w.check("cancel an unseen request", map[string]time.Duration{w.key("b1", "req:r3"): retention})

	_, err = b.store.ForceFail(ctx, request("r4", "b1"), state.Outcome{Failure: failure(lifecycle.CodeMalformedMessage, 0)})
	require.NoError(t, err)
	w.check("force fail an unseen request", map[string]time.Duration{w.key("b1", "req:r4"): retention})

	_, err = b.store.Supersede(ctx, lifecycle.Ref{ID: "r5", BatchID: "b1"}, "r5-esc")
	require.NoError(t, err)
	w.check("supersede an unseen request", map[string]time.Duration{w.key("b1", "req:r5"): retention})

	solo := request("solo", "")
	solo.ExpiresAt = base.Add(6 * time.Hour)
	b.claim(t, solo, "w1")
	w.check("claim a batchless request", map[string]time.Duration{w.key("~ solo", "req:solo"): w.live(solo.ExpiresAt)})

	ghost := request("g1", "ghost") // a batch id with no batch record
	ghost.ExpiresAt = base.Add(5 * time.Hour)
	_, err = b.claimOf(t, ghost, "w1")
	require.ErrorIs(t, err, lifecycle.ErrNoBatch)
	n, err := b.redis.Client.Exists(ctx, w.key("ghost", "req:g1"), w.key("ghost", "batch"), w.key("ghost", "leases")).Result()
	require.NoError(t, err)
	require.Zero(t, n, "a claim in a batch without a record writes nothing")
	w.check("claim in a batch without a record", nil)

	ok, err := b.store.AcquireModelSlot(ctx, "gpt-4o", "w1", 2, 30*time.Second)
	require.NoError(t, err)
	require.True(t, ok)
	w.check("acquire a model slot", map[string]time.Duration{w.key("slots:gpt-4o", "holders"): 30 * time.Second})

	// r1 (pending again) and r6 (never seen) are counted canceled at once:
	// every request has ended, but the batch keeps its keys while results
	// are still out
	tr, err := b.store.CancelBatch(ctx, "b1")
	require.NoError(t, err)
	require.NotNil(t, tr.Finalized)
	w.check("cancel the batch", map[string]time.Duration{
		w.key("b1", "batch"):  w.live(batchExp),
		w.key("b1", "req:r1"): w.live(batchExp),
	})

	// r1's and r6's messages are read and end canceled; once every result
	// is out the batch is final and keeps retention from then
	for _, id := range []string{"r1", "r6"} {
		require.Equal(t, lifecycle.StateCanceled, b.ended(t, request(id, "b1"), "w1").State)
	}
	w.check("end the queued requests", map[string]time.Duration{
		w.key("b1", "req:r1"): retention,
		w.key("b1", "req:r6"): retention,
	})
	require.Empty(t, b.publish(t, refs("b1", "r1", "r3", "r4", "r6")...), "r5's winner never published a line")
	final, err := b.store.FinishBatch(ctx, "b1")
	require.NoError(t, err)
	require.NotNil(t, final)
	w.check("finish the batch without r5's result", map[string]time.Duration{w.key("b1", "batch"): retention})
}

// A claim long after its batch's expires_at plus retention ends the
// request expired; its record keeps retention from then, and no key is left
// without a TTL.
func TestAClaimPastTheDeadlineLeavesNothingWithoutATTL(t *testing.T) {
	t.Parallel()
	const retention = time.Hour
	b := setup(t, func(c *state.Config) { c.Retention = retention })
	ctx := ctxT(t)
	b.createBatch(t, "late", 2)
	b.clock.Advance(30 * time.Hour) // past expires_at (24h) plus retention
	c, err := b.store.Claim(ctx, state.ClaimArgs{Request: request("r1", "late"), Owner: "w1", Delivery: 1, Start: true})
	require.NoError(t, err)
	require.NotNil(t, c.Ended)
	require.Equal(t, lifecycle.StateExpired, c.Ended.State)
	w := &ttlWalk{t: t, b: b, retention: retention, ceiling: 24*time.Hour + retention}
	w.check("claim past the deadline", map[string]time.Duration{w.key("late", "req:r1"): retention})
}
