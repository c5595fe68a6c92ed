package demo

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/salvo-run/salvo/internal/producer"
	"github.com/salvo-run/salvo/pkg/state"
)

// submit is the producer's part, as `producer submit --skip-invalid` does
// it (internal/producer): validate the whole input, create the batch
// through the batch API with the good lines' count, publish their
// requests. The bad lines come back in the result and are printed.
func (r *runner) submit(ctx context.Context, nc *nats.Conn, prefix string, sum *Summary) error {
	res, err := producer.Submit(ctx, nc, producer.SubmitOptions{
		Path:             r.o.Input,
		BatchID:          sum.BatchID,
		CompletionWindow: completionWindow,
		Metadata:         map[string]string{"source": r.o.Input},
		SkipInvalid:      true,
		Prefix:           prefix,
		Logger:           r.o.Logger,
	})
	sum.Lines, sum.LineErrors, sum.Requests = res.Lines, len(res.Rejected), res.Requests
	if res.Lines > 0 || len(res.Rejected) > 0 {
		r.printf("  input     %s: %d lines, %d requests, %d bad line(s)\n", r.o.Input, res.Lines, res.Requests, len(res.Rejected))
		for _, e := range res.Rejected {
			r.printf("            rejected %s\n", e)
		}
	}
	switch {
	case err != nil && res.Requests == 0 && res.Lines > 0:
		return fmt.Errorf("demo: input %s has no valid request: %w", r.o.Input, err)
	case err != nil:
		return fmt.Errorf("demo: submit %s: %w", r.o.Input, err)
	}
	b := res.Batch
	r.printf("  batch     %s: %d requests published (window %s, expires %s)\n",
		b.ID, res.Published, b.CompletionWindow, time.Unix(*b.ExpiresAt, 0).UTC().Format(time.RFC3339))
	return nil
}

// watch reads the batch from the store every PollInterval, prints its
// counters when they changed, and returns once the batch is final — which
// it turns only when every request's result is published. It is bounded
// by ctx (Options.Timeout).
func (r *runner) watch(ctx context.Context, store *state.Store, sum *Summary) error {
	r.printf("progress\n")
	tick := time.NewTicker(r.o.PollInterval)
	defer tick.Stop()
	var last string
	for {
		b, err := store.Batch(ctx, sum.BatchID)
		if err != nil {
			return err
		}
		c := b.Counts
		sum.Status, sum.Counts, sum.Results = b.Status, c, int(b.ResultsPublished)
		line := fmt.Sprintf("%-11s pending %2d  in_progress %2d  completed %2d  failed %2d  canceled %d  expired %d | results %d/%d",
			b.Status, c.Pending, c.InProgress, c.Completed, c.Failed, c.Canceled, c.Expired, sum.Results, sum.Requests)
		if line != last {
			r.printf("  [%5.1fs] %s\n", time.Since(r.start).Seconds(), line)
			last = line
		}
		if b.Status.Terminal() {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("demo: batch %s is %s with %d of %d results: %w", sum.BatchID, b.Status, sum.Results, sum.Requests, context.Cause(ctx))
		case <-tick.C:
		}
	}
}
