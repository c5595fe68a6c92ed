package main

import (
	"context"
	"time"

	"github.com/spf13/cobra"

	"github.com/salvo-run/salvo/internal/producer"
	"github.com/salvo-run/salvo/pkg/api"
	"github.com/salvo-run/salvo/pkg/lifecycle"
)

func (a *app) watchCmd() *cobra.Command {
	var interval time.Duration
	cmd := &cobra.Command{
		Use:   "watch BATCH",
		Short: "Follow a batch until it ends, with a live progress bar",
		Long: `watch polls the batch (batch.get) every --interval until its status is
final, then prints a summary: the final status, the counts by state, the
wall time, the throughput in requests per second, the results published or
missing, and — read from the results — the upstream retries and the p50 and
p99 latency of the requests' last attempts.

On a terminal it draws a progress bar of the requests that ended
(completed, failed, canceled, expired or superseded) out of the batch's
total, with the counts by state, the rate and the time left. When stdout is
not a terminal it prints a plain line instead, every 10 polls (5 s at the
default interval) when the counts changed, and at once when the status
changes.

Exit code: 0 when the batch completed, 1 when it failed, expired or was
cancelled, 130 when interrupted (the batch keeps running). With --json
the progress goes to stderr and stdout gets the final batch object.`,
		Example: `  producer watch nightly-1
  producer watch nightly-1 --interval 2s > progress.log
  producer watch nightly-1 && producer results nightly-1 -o out.jsonl`,
		Args: exactArgs("BATCH"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if interval <= 0 {
				return usagef("--interval %s must be positive", interval)
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			// With --json, stdout is for the final batch object only.
			progress := a.io.out
			if a.jsonOut {
				progress = a.io.err
			}
			w := &producer.Watcher{Client: c, BatchID: args[0], Out: progress, Terminal: producer.IsTerminal(progress),
				Stats: a.resultStats(args[0]), Interval: interval, CallTimeout: a.conn.timeout}
			b, err := w.Run(cmd.Context())
			if err != nil {
				return err
			}
			if a.jsonOut {
				if err := a.printJSON(b); err != nil {
					return err
				}
			}
			return finalExit(b)
		},
	}
	cmd.Flags().DurationVar(&interval, "interval", producer.WatchIntervalDefault, "time between two polls of the batch")
	return cmd
}

// finalExit is the exit of a final batch: nil when it completed.
func finalExit(b api.BatchObject) error {
	if lifecycle.BatchStatus(b.Status) == lifecycle.BatchCompleted {
		return nil
	}
	return &exitError{code: exitFailed}
}

// resultStats reads the retries and latency of a batch's results.
func (a *app) resultStats(id string) func(ctx context.Context) (producer.Stats, error) {
	return func(ctx context.Context) (producer.Stats, error) {
		nc, err := a.connect()
		if err != nil {
			return producer.Stats{}, err
		}
		return producer.ResultStats(ctx, nc, a.conn.prefix, id)
	}
}
