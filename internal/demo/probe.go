package demo

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/salvo-run/salvo/pkg/lifecycle"
	"github.com/salvo-run/salvo/pkg/state"
)

// ErrRedisUnsuitable: the chosen Redis does not run pkg/state's scripts
// correctly, so the demo refuses to run on it rather than report wrong
// results.
var ErrRedisUnsuitable = errors.New("demo: redis cannot run pkg/state's scripts")

// probeStore runs every move the worker makes (create batch, claim into
// processing, retry, reclaim, complete, claim, fail, mark published) on a
// throwaway two-request batch and checks the records and counters the
// scripts leave. Any difference means the Redis (a stand-in in particular)
// does not run the scripts faithfully.
func probeStore(ctx context.Context, store *state.Store, batchID string) error {
	fail := func(step string, err error) error {
		return fmt.Errorf("%w: %s: %w", ErrRedisUnsuitable, step, err)
	}
	now := time.Now()
	if _, _, err := store.CreateBatch(ctx, state.NewBatch{
		ID: batchID, CompletionWindow: "1h", CreatedAt: now, ExpiresAt: now.Add(time.Hour), Total: 2,
	}); err != nil {
		return fail("create batch", err)
	}
	req := func(id string) *lifecycle.Request {
		return &lifecycle.Request{V: lifecycle.WireVersion, ID: batchID + "-" + id, BatchID: batchID, CustomID: id,
			Model: "probe", Method: "POST", URL: "/v1/chat/completions", Body: []byte(`{"model":"probe"}`),
			ExpiresAt: now.Add(time.Hour)}
	}
	claim := func(r *lifecycle.Request) (lifecycle.Processing, error) {
		c, err := store.Claim(ctx, state.ClaimArgs{Request: r, Owner: "demo-probe", Delivery: 1, Start: true})
		if err != nil {
			return lifecycle.Processing{}, err
		}
		if c.Held == nil {
			return lifecycle.Processing{}, fmt.Errorf("claim of %s ended it (%+v)", r.ID, c.Ended)
		}
		p, ok := c.Held.Processing(time.Now())
		if !ok {
			return lifecycle.Processing{}, fmt.Errorf("claim of %s left it %s, want processing", r.ID, c.Held.State)
		}
		return p, nil
	}

	a, b := req("a"), req("b")
	p, err := claim(a)
	if err != nil {
		return fail("claim", err)
	}
	failure := lifecycle.NewFailure(lifecycle.CodeRetriableStatus, 500, "probe")
	if _, err := store.Retry(ctx, p, failure, time.Now()); err != nil {
		return fail("retry", err)
	}
	p2, err := claim(a)
	if err != nil {
		return fail("reclaim after retry", err)
	}
	if p2.Lease.Token <= p.Lease.Token {
		return fail("reclaim after retry", fmt.Errorf("fencing token %d did not grow past %d", p2.Lease.Token, p.Lease.Token))
	}
	switch _, err := store.Complete(ctx, p, state.Outcome{Status: 200}); {
	case err == nil:
		return fail("fenced write", errors.New("a stale token's complete was accepted, want ErrLeaseLost"))
	case !errors.Is(err, state.ErrLeaseLost):
		return fail("fenced write", fmt.Errorf("a stale token's complete failed with %w, want ErrLeaseLost", err))
	}
	if _, err := store.Complete(ctx, p2, state.Outcome{Status: 200, Result: []byte(`{}`)}); err != nil {
		return fail("complete", err)
	}
	pb, err := claim(b)
	if err != nil {
		return fail("claim", err)
	}
	t, err := store.Fail(ctx, pb.Held(), state.Outcome{Failure: lifecycle.NewFailure(lifecycle.CodeNonRetriableStatus, 400, "probe")})
	if err != nil {
		return fail("fail", err)
	}
	if t.Finalized == nil || t.Finalized.Status != lifecycle.BatchFinalizing {
		return fail("finalize", fmt.Errorf("the last terminal move did not leave the batch finalizing (%+v)", t.Finalized))
	}
	final, err := store.MarkPublished(ctx, []lifecycle.Ref{a.Ref(), b.Ref()})
	if err != nil {
		return fail("mark published", err)
	}
	if len(final) != 1 || final[0].Status != lifecycle.BatchCompleted {
		return fail("finalize", fmt.Errorf("marking the last result did not turn the batch completed (%+v)", final))
	}
	got, err := store.Batch(ctx, batchID)
	if err != nil {
		return fail("read batch", err)
	}
	if want := (lifecycle.Counts{Total: 2, Completed: 1, Failed: 1}); got.Counts != want {
		return fail("counters", fmt.Errorf("got %+v, want %+v", got.Counts, want))
	}
	rec, err := store.Request(ctx, a.Ref())
	if err != nil {
		return fail("read record", err)
	}
	if rec.State != lifecycle.StateCompleted || rec.Attempt != 2 || !rec.Published {
		return fail("record", fmt.Errorf("got state %s attempt %d published %t, want completed, 2, true", rec.State, rec.Attempt, rec.Published))
	}
	return nil
}
