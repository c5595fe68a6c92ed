package demo

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/salvo-run/salvo/internal/producer"
	"github.com/salvo-run/salvo/pkg/client"
	"github.com/salvo-run/salvo/pkg/lifecycle"
)

// submit is the producer's part, as `producer submit --skip-invalid` does
// it (internal/producer): validate the whole input, create the batch
// through the batch API with the good lines' count, publish their
// requests. The bad lines come back in the result and are printed.
func (r *runner) submit(ctx context.Context, nc *nats.Conn, input, prefix string, sum *Summary) error {
	res, err := producer.Submit(ctx, nc, producer.SubmitOptions{
		Path:             input,
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

// watchCallTimeout bounds one poll of the batch API.
const watchCallTimeout = 5 * time.Second

// watch follows the batch as `producer watch` does (internal/producer's
// Watcher, over the batch API the workers serve): a progress bar on a
// terminal, plain lines otherwise, every PollInterval until the batch is
// final — which it turns only once every request's result is published —
// then the producer's summary. Bounded by ctx (Options.Timeout).
func (r *runner) watch(ctx context.Context, nc *nats.Conn, prefix string, since time.Time, sum *Summary) error {
	r.printf("progress\n")
	w := &producer.Watcher{
		Client:      client.New(nc, prefix),
		BatchID:     sum.BatchID,
		Out:         r.out,
		Terminal:    r.o.Terminal,
		Interval:    r.o.PollInterval,
		CallTimeout: watchCallTimeout,
		Since:       since,
		Stats: func(ctx context.Context) (producer.Stats, error) {
			st, err := producer.ResultStats(ctx, nc, prefix, sum.BatchID)
			sum.Retries = int(st.Retries)
			return st, err
		},
	}
	b, err := w.Run(ctx)
	sum.Status, sum.Counts, sum.Results = lifecycle.BatchStatus(b.Status), b.Salvo.Counts, int(b.Salvo.ResultsPublished)
	if err != nil {
		return fmt.Errorf("demo: batch %s is %s with %d of %d results: %w", sum.BatchID, b.Status, sum.Results, sum.Requests, err)
	}
	sum.Wall, sum.Rate = w.Throughput(b)
	return nil
}
