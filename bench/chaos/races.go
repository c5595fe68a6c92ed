package main

import (
	"context"
	"fmt"
	"time"

	"github.com/salvo-run/salvo/internal/mockupstream"
	"github.com/salvo-run/salvo/pkg/lifecycle"
)

// runtime estimates how long the workers take for n requests at the
// size's concurrency and mean upstream latency (1.5 × the minimum).
func (sz size) runtime(n, workers int) time.Duration {
	perSecond := float64(workers*sz.concurrency) / (1.5 * sz.latency.Seconds())
	return time.Duration(float64(n) / perSecond * float64(time.Second))
}

// interleave returns the requests of several batches round-robin, so that
// the batches run side by side.
func interleave(lists ...[]*lifecycle.Request) []*lifecycle.Request {
	var out []*lifecycle.Request
	for i := 0; ; i++ {
		added := false
		for _, l := range lists {
			if i < len(l) {
				out = append(out, l[i])
				added = true
			}
		}
		if !added {
			return out
		}
	}
}

// cancelExpiry: three batches side by side — one whose requests are
// cancelled one by one as they run, one cancelled whole mid-way, one whose
// completion window ends mid-way — so cancels and the expiry race the
// completions of the same requests.
func cancelExpiry() *scenario {
	var reqCancel, batchCancel, expiring []*lifecycle.Request
	return &scenario{
		name:  "cancel-expiry",
		title: "request cancels, a batch cancel and a batch expiry racing completions",
		setup: func(ctx context.Context, r *run) error {
			n := r.sz.n
			var err error
			if reqCancel, err = r.newBatch(ctx, "cancel-requests", model, n/2, "1h"); err != nil {
				return err
			}
			if batchCancel, err = r.newBatch(ctx, "cancel-batch", model, n/4, "1h"); err != nil {
				return err
			}
			// The window ends about half-way through the run.
			window := max(r.sz.runtime(n, 3)/2, 2*time.Second).Round(time.Second)
			if expiring, err = r.newBatch(ctx, "expire", model, n/4, window.String()); err != nil {
				return err
			}
			r.note("batch expire: completion window %s (about half the run)", window)
			return r.publish(ctx, interleave(reqCancel, batchCancel, expiring))
		},
		inject: func(ctx context.Context, r *run) error {
			if err := r.waitResults(ctx, 0.1); err != nil {
				return err
			}
			// One request cancel every 200 ms, each aimed at the oldest
			// request of the batch without a result: likely in flight.
			done := make(chan error, 1)
			go func() {
				done <- every(ctx, 200*time.Millisecond, r.sz.n/20, func() bool { return r.allEnded(ctx) }, func(int) error {
					for _, q := range reqCancel {
						if len(r.e.res.outcomes(q.ID)) == 0 && !r.isCancelled(q.ID) {
							at := time.Now()
							if _, err := r.e.api.CancelRequest(ctx, q.BatchID, q.ID); err != nil {
								return fmt.Errorf("cancel request %s: %w", q.ID, err)
							}
							r.markCancelled(q.ID)
							// A cancel aborts a call, it never runs one again:
							// no duplicate call is allowed for it.
							r.addFault("cancel request", at, 0)
							return nil
						}
					}
					return nil
				})
			}()
			if err := r.waitResults(ctx, 0.3); err != nil {
				return err
			}
			at := time.Now()
			if _, err := r.e.api.CancelBatch(ctx, "cancel-batch"); err != nil {
				return fmt.Errorf("cancel batch: %w", err)
			}
			r.addFault("cancel batch", at, 0)
			return <-done
		},
		minFaults: func(size) map[string]int { return map[string]int{"cancel request": 1, "cancel batch": 1} },
		verify: func(_ context.Context, r *run) error {
			counts := r.outcomeCounts()
			r.note("outcomes: %v", counts)
			if counts["canceled request_cancelled"] == 0 {
				return fmt.Errorf("no request ended cancelled one by one: the race was not exercised (%v)", counts)
			}
			if counts["canceled batch_cancelled"] == 0 || counts["expired batch_expired"] == 0 {
				return fmt.Errorf("the batch cancel or the expiry ended no request: the race was not exercised (%v)", counts)
			}
			return nil
		},
	}
}

// escalationRace: every request of the slow model races a copy on the
// fast model (threshold longer than the window), and workers are killed
// while the pairs run.
func escalationRace() *scenario {
	return &scenario{
		name:  "escalation-race",
		title: "every request races an escalated copy; 2 worker SIGKILLs during the race (at 20 % and 50 % of the results)",
		profile: func(sz size) profile {
			slow := sz.latency * 3
			return profile{
				mock: mockupstream.Options{Models: map[string]mockupstream.Script{
					model:     {Latency: &mockupstream.Latency{Min: slow, Max: 2 * slow}},
					fastModel: {Latency: &mockupstream.Latency{Min: sz.latency, Max: 2 * sz.latency}},
				}},
				extra: fmt.Sprintf("escalations:\n  %s: {model: %s, threshold: 2h, mode: race}\n", model, fastModel),
			}
		},
		setup: func(ctx context.Context, r *run) error {
			reqs, err := r.newBatch(ctx, r.sc.name, model, r.sz.n/2, "1h")
			if err != nil {
				return err
			}
			return r.publish(ctx, reqs)
		},
		inject: func(ctx context.Context, r *run) error {
			return r.killAt(ctx, []float64{0.2, 0.5})
		},
		minFaults: func(size) map[string]int { return map[string]int{"kill worker": 2} },
		verify: func(_ context.Context, r *run) error {
			counts := r.outcomeCounts()
			r.note("outcomes: %v", counts)
			calls := r.e.mock.CallsForModel(fastModel)
			if calls == 0 {
				return fmt.Errorf("no call reached the escalation model: the race was not exercised")
			}
			r.note("%d calls on the escalation model, %d on the requested one", calls, r.e.mock.CallsForModel(model))
			return nil
		},
	}
}
