package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/salvo-run/salvo/internal/producer"
	"github.com/salvo-run/salvo/pkg/api"
	"github.com/salvo-run/salvo/pkg/client"
	"github.com/salvo-run/salvo/pkg/lifecycle"
)

// Watch defaults.
const (
	watchIntervalDefault = 500 * time.Millisecond
	// plainLinePolls: without a terminal, a progress line every that many
	// polls (5 s at the default interval), when the counts changed.
	plainLinePolls = 10
	barWidth       = 30
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
			w := &watcher{c: c, id: args[0], w: progress, terminal: isTerminal(progress), stats: a.resultStats(args[0]),
				interval: interval, callTimeout: a.conn.timeout}
			b, err := w.run(cmd.Context())
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
	cmd.Flags().DurationVar(&interval, "interval", watchIntervalDefault, "time between two polls of the batch")
	return cmd
}

// finalExit is the exit of a final batch: nil when it completed.
func finalExit(b api.BatchObject) error {
	if lifecycle.BatchStatus(b.Status) == lifecycle.BatchCompleted {
		return nil
	}
	return &exitError{code: exitFailed}
}

// watcher follows one batch until it is final, drawing its progress on w:
// a progress bar when terminal, plain lines otherwise.
type watcher struct {
	c           *client.Client
	id          string
	w           io.Writer
	terminal    bool
	interval    time.Duration
	callTimeout time.Duration

	// stats, when set, reads the results' retries and latency for the
	// summary.
	stats func(ctx context.Context) (producer.Stats, error)

	start    time.Time
	first    api.BatchObject
	bar      *progressbar.ProgressBar
	polls    int
	lastLine lifecycle.Counts
	lastStat string
}

// run polls until the batch is final and returns it, after the summary.
// When ctx ends first it returns the last batch seen and errInterrupted;
// an error of the first poll (unknown batch, no service) ends it at once;
// later, an API refusal ends it, while a passing error (unavailable, a
// timeout, NATS reconnecting) is shown and polling goes on.
func (w *watcher) run(ctx context.Context) (api.BatchObject, error) {
	b, err := w.poll(ctx)
	if err != nil {
		return b, err
	}
	w.start, w.first = time.Now(), b
	tick := time.NewTicker(w.interval)
	defer tick.Stop()
	for {
		w.show(b)
		if lifecycle.BatchStatus(b.Status).Terminal() {
			w.endBar()
			w.summary(b)
			return b, nil
		}
		select {
		case <-ctx.Done():
			w.endBar()
			fmt.Fprintf(w.w, "interrupted: batch %s is %s and keeps running (producer cancel %s stops it)\n", b.ID, b.Status, b.ID)
			return b, fmt.Errorf("watch %s: %w", b.ID, errInterrupted)
		case <-tick.C:
		}
		next, err := w.poll(ctx)
		var apiErr *client.Error
		switch {
		case errors.As(err, &apiErr) && apiErr.Code != api.CodeUnavailable:
			// The API refused (the batch is gone, say): nothing to wait
			// for. Unavailable (a worker stopping, Redis slow) is passing.
			w.endBar()
			return b, err
		case err != nil && ctx.Err() == nil:
			w.problem(err)
		case err == nil:
			b = next
		}
	}
}

func (w *watcher) poll(ctx context.Context) (api.BatchObject, error) {
	ctx, cancel := context.WithTimeout(ctx, w.callTimeout)
	defer cancel()
	return w.c.Batch(ctx, w.id)
}

// show draws one poll: the bar's next frame, or a plain line when due.
func (w *watcher) show(b api.BatchObject) {
	w.polls++
	c := b.Salvo.Counts
	if w.terminal {
		w.drawBar(b)
		return
	}
	changed := c != w.lastLine
	if w.polls == 1 || b.Status != w.lastStat || (changed && w.polls%plainLinePolls == 0) {
		fmt.Fprintf(w.w, "%s %s %s: %d/%d ended · %s%s\n", w.elapsed(), b.ID, b.Status,
			c.Terminal(), c.Total, stateCounts(c), w.rateETA(b))
		w.lastLine, w.lastStat = c, b.Status
	}
}

// drawBar moves the bar to the batch's ended count. An open batch's bar
// stays one short of its total, so it finishes only once sealed.
func (w *watcher) drawBar(b api.BatchObject) {
	c := b.Salvo.Counts
	barMax := max(c.Total, 1)
	if !b.Salvo.Sealed {
		barMax = c.Total + 1
	}
	desc := b.Status + " · " + stateCounts(c) + w.rateETA(b)
	if w.bar == nil {
		w.bar = progressbar.NewOptions64(barMax,
			progressbar.OptionSetWriter(w.w),
			progressbar.OptionSetWidth(barWidth),
			progressbar.OptionShowCount(),
			progressbar.OptionSetPredictTime(false),
			progressbar.OptionSetElapsedTime(true),
			progressbar.OptionShowDescriptionAtLineEnd(),
			progressbar.OptionSetDescription(desc),
			progressbar.OptionUseANSICodes(true),
			progressbar.OptionOnCompletion(func() { fmt.Fprintln(w.w) }),
		)
	}
	if w.bar.GetMax64() != barMax {
		w.bar.ChangeMax64(barMax)
	}
	_ = w.bar.Set64(min(c.Terminal(), barMax))
	w.bar.Describe(desc)
}

// endBar leaves the bar's last frame on its own line.
func (w *watcher) endBar() {
	if w.bar != nil && !w.bar.IsFinished() {
		_ = w.bar.Exit()
	}
}

// problem reports a failed poll without ending the watch.
func (w *watcher) problem(err error) {
	if w.terminal && w.bar != nil {
		w.bar.Describe("retrying: " + err.Error())
		return
	}
	fmt.Fprintf(w.w, "%s %s: poll failed, retrying: %v\n", w.elapsed(), w.id, err)
}

func (w *watcher) elapsed() string {
	if w.start.IsZero() {
		return fmt.Sprintf("[%6s]", "0s")
	}
	return fmt.Sprintf("[%6s]", time.Since(w.start).Round(100*time.Millisecond))
}

// rate is the requests ended per second since the watch began.
func (w *watcher) rate(b api.BatchObject) float64 {
	d := time.Since(w.start).Seconds()
	n := b.Salvo.Counts.Terminal() - w.first.Salvo.Counts.Terminal()
	if w.start.IsZero() || d <= 0 || n <= 0 {
		return 0
	}
	return float64(n) / d
}

// rateETA is " · 12.3 req/s · ETA 8s", or less when not known yet.
func (w *watcher) rateETA(b api.BatchObject) string {
	r := w.rate(b)
	if r == 0 {
		return ""
	}
	s := fmt.Sprintf(" · %.1f req/s", r)
	c := b.Salvo.Counts
	if left := c.Total - c.Terminal(); b.Salvo.Sealed && left > 0 {
		s += " · ETA " + (time.Duration(float64(left)/r) * time.Second).Round(time.Second).String()
	}
	return s
}

// summary prints the final status, the counts, the wall time and the
// throughput. The wall time is the watch's own when it saw the batch
// before any request ended (precise), the batch's creation to its final
// time otherwise (whole seconds).
func (w *watcher) summary(b api.BatchObject) {
	c := b.Salvo.Counts
	wall := time.Since(w.start)
	if w.first.Salvo.Counts.Terminal() > 0 {
		if at, created := finalAt(b), b.CreatedAt; at != nil && created != nil {
			wall = time.Duration(*at-*created) * time.Second
		}
	}
	rate := "-"
	if wall > 0 {
		rate = fmt.Sprintf("%.1f", float64(c.Terminal())/wall.Seconds())
	}
	fmt.Fprintf(w.w, "batch %s %s in %s: %d request(s), %s; %s req/s\n",
		b.ID, b.Status, wall.Round(100*time.Millisecond), c.Total, endedCounts(c), rate)
	fmt.Fprintf(w.w, "results: %d published, %d missing\n", b.Salvo.ResultsPublished, b.Salvo.ResultsMissing)
	if w.stats == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), statsTimeout)
	defer cancel()
	st, err := w.stats(ctx)
	switch {
	case err != nil:
		fmt.Fprintf(w.w, "upstream: no retry or latency figures (%v)\n", err)
	case st.Timed == 0:
		fmt.Fprintf(w.w, "upstream: %d retries; no upstream call timed\n", st.Retries)
	default:
		fmt.Fprintf(w.w, "upstream: %d retries; latency of the last attempt p50 %s, p99 %s (%d calls)\n",
			st.Retries, st.P50.Round(time.Millisecond), st.P99.Round(time.Millisecond), st.Timed)
	}
}

// statsTimeout bounds reading a batch's results for the summary.
const statsTimeout = 30 * time.Second

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

// stateCounts lists the non-zero counters by state, ended ones first.
func stateCounts(c lifecycle.Counts) string {
	var parts []string
	for _, s := range []struct {
		name string
		n    int64
	}{
		{"completed", c.Completed}, {"failed", c.Failed}, {"expired", c.Expired}, {"canceled", c.Canceled},
		{"superseded", c.Superseded}, {"running", c.InProgress}, {"pending", c.Pending},
	} {
		if s.n > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", s.name, s.n))
		}
	}
	if len(parts) == 0 {
		return "no requests yet"
	}
	return strings.Join(parts, ", ")
}
