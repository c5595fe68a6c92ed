package demo

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/salvo-run/salvo/pkg/api"
	"github.com/salvo-run/salvo/pkg/batchfile"
	"github.com/salvo-run/salvo/pkg/client"
	"github.com/salvo-run/salvo/pkg/lifecycle"
	"github.com/salvo-run/salvo/pkg/queue"
	"github.com/salvo-run/salvo/pkg/state"
)

// collector gathers results as the subscription delivers them.
type collector struct {
	mu      sync.Mutex
	results map[string]*lifecycle.Result
}

func newCollector() *collector {
	return &collector{results: map[string]*lifecycle.Result{}}
}

func (c *collector) add(res *lifecycle.Result) {
	c.mu.Lock()
	c.results[res.ID] = res
	c.mu.Unlock()
}

func (c *collector) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.results)
}

func (c *collector) snapshot() map[string]*lifecycle.Result {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]*lifecycle.Result, len(c.results))
	for k, v := range c.results {
		out[k] = v
	}
	return out
}

// produce is the producer's part: subscribe to the batch's results, create
// the batch, publish its requests, and watch until the batch is final and
// every result is in.
func (r *runner) produce(ctx context.Context, q *queue.Client, c *client.Client, store *state.Store, p batchfile.Parsed, sum *Summary) (map[string]*lifecycle.Result, error) {
	col := newCollector()
	stop, err := q.SubscribeResults(ctx, sum.BatchID, col.add)
	if err != nil {
		return nil, err
	}
	r.onClose(stop)

	// The batch is created through the batch API over NATS, as any client
	// would; its counters are watched in Redis below.
	b, err := c.CreateBatch(ctx, api.CreateParams{
		ID:               sum.BatchID,
		CompletionWindow: completionWindow,
		Endpoint:         p.Requests[0].Request.URL,
		Metadata:         map[string]string{"source": r.o.Input},
		Total:            int64(len(p.Requests)),
	})
	if err != nil {
		return nil, fmt.Errorf("demo: batch.create: %w", err)
	}
	pub := q.NewPublisher()
	for _, l := range p.Requests {
		if err := pub.Publish(ctx, l.Request); err != nil {
			return nil, fmt.Errorf("demo: publish line %d: %w", l.Number, err)
		}
	}
	if err := pub.Flush(ctx); err != nil {
		return nil, fmt.Errorf("demo: publish: %w", err)
	}
	r.printf("  batch     %s: %d requests published (window %s, expires %s)\n",
		b.ID, b.RequestCounts.Total, b.CompletionWindow, time.Unix(*b.ExpiresAt, 0).UTC().Format(time.RFC3339))
	r.printf("progress\n")

	if err := r.watch(ctx, store, col, sum); err != nil {
		return nil, err
	}
	return col.snapshot(), nil
}

// watch reads the counters every PollInterval, prints them when they or
// the result count changed, and returns once the batch is final and every request's result arrived.
// It is bounded by ctx (Options.Timeout).
func (r *runner) watch(ctx context.Context, store *state.Store, col *collector, sum *Summary) error {
	tick := time.NewTicker(r.o.PollInterval)
	defer tick.Stop()
	var last string
	for {
		b, err := store.Batch(ctx, sum.BatchID)
		if err != nil {
			return err
		}
		n := col.len()
		c := b.Counts
		line := fmt.Sprintf("%-11s pending %2d  in_progress %2d  completed %2d  failed %2d  canceled %d  expired %d | results %d/%d",
			b.Status, c.Pending, c.InProgress, c.Completed, c.Failed, c.Canceled, c.Expired, n, sum.Requests)
		if line != last {
			r.printf("  [%5.1fs] %s\n", time.Since(r.start).Seconds(), line)
			last = line
		}
		if b.Status.Terminal() && n >= sum.Requests {
			sum.Status, sum.Counts, sum.Results = b.Status, c, n
			return nil
		}
		select {
		case <-ctx.Done():
			sum.Status, sum.Counts, sum.Results = b.Status, c, n
			return fmt.Errorf("demo: batch %s is %s with %d of %d results: %w", sum.BatchID, b.Status, n, sum.Requests, context.Cause(ctx))
		case <-tick.C:
		}
	}
}
