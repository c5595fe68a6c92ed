package producer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/salvo-run/salvo/pkg/api"
	"github.com/salvo-run/salvo/pkg/client"
	"github.com/salvo-run/salvo/pkg/lifecycle"
)

// Watch defaults.
const (
	// WatchIntervalDefault is the time between two polls of the batch.
	WatchIntervalDefault = 500 * time.Millisecond
	// plainLinePolls: without a terminal, a progress line every that many
	// polls (5 s at the default interval), when the counts changed.
	plainLinePolls = 10
	barWidth       = 30
	// statsTimeout bounds reading a batch's results for the summary.
	statsTimeout = 30 * time.Second
)

// ErrInterrupted: the watch's context ended before the batch did (the
// batch keeps running).
var ErrInterrupted = errors.New("interrupted")

// IsTerminal reports whether w is a terminal (a file descriptor term
// recognises): progress bars go there, plain lines everywhere else.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(interface{ Fd() uintptr })
	return ok && term.IsTerminal(int(f.Fd()))
}

// Watcher follows one batch through the batch API until it is final,
// drawing its progress on Out — a progress bar on a terminal, plain lines
// otherwise — and then prints a summary: status, counts, wall time,
// requests per second, results, and (with Stats) the upstream retries and
// latency. `producer watch`, `producer submit --wait` and the demo use it.
type Watcher struct {
	Client  *client.Client
	BatchID string
	Out     io.Writer
	// Terminal draws a progress bar (IsTerminal(Out) outside tests).
	Terminal bool
	// Interval is the time between two polls; CallTimeout bounds one.
	Interval    time.Duration
	CallTimeout time.Duration
	// Stats, when set, reads the results' retries and latency for the
	// summary.
	Stats func(ctx context.Context) (Stats, error)
	// Since, when set, is when the batch was submitted: the wall time and
	// the rate count from it rather than from the first poll.
	Since time.Time

	start    time.Time
	first    api.BatchObject
	bar      *progressbar.ProgressBar
	polls    int
	lastLine lifecycle.Counts
	lastStat string
}

// Run polls until the batch is final and returns it, after the summary.
// When ctx ends first it returns the last batch seen and ErrInterrupted;
// an error of the first poll (unknown batch, no service) ends it at once;
// later, an API refusal ends it, while a passing error (unavailable, a
// timeout, NATS reconnecting) is shown and polling goes on.
func (w *Watcher) Run(ctx context.Context) (api.BatchObject, error) {
	b, err := w.poll(ctx)
	if err != nil {
		return b, err
	}
	w.start, w.first = time.Now(), b
	if !w.Since.IsZero() {
		w.start, w.first = w.Since, api.BatchObject{}
	}
	tick := time.NewTicker(w.Interval)
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
			fmt.Fprintf(w.Out, "interrupted: batch %s is %s and keeps running (producer cancel %s stops it)\n", b.ID, b.Status, b.ID)
			return b, fmt.Errorf("watch %s: %w", b.ID, ErrInterrupted)
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

func (w *Watcher) poll(ctx context.Context) (api.BatchObject, error) {
	ctx, cancel := context.WithTimeout(ctx, w.CallTimeout)
	defer cancel()
	return w.Client.Batch(ctx, w.BatchID)
}

// show draws one poll: the bar's next frame, or a plain line when due.
func (w *Watcher) show(b api.BatchObject) {
	w.polls++
	c := b.Salvo.Counts
	if w.Terminal {
		w.drawBar(b)
		return
	}
	changed := c != w.lastLine
	if w.polls == 1 || b.Status != w.lastStat || (changed && w.polls%plainLinePolls == 0) {
		fmt.Fprintf(w.Out, "%s %s %s: %d/%d ended · %s%s\n", w.elapsed(), b.ID, b.Status,
			c.Terminal(), c.Total, stateCounts(c), w.rateETA(b))
		w.lastLine, w.lastStat = c, b.Status
	}
}

// drawBar moves the bar to the batch's ended count. An open batch's bar
// stays one short of its total, so it finishes only once sealed.
func (w *Watcher) drawBar(b api.BatchObject) {
	c := b.Salvo.Counts
	barMax := max(c.Total, 1)
	if !b.Salvo.Sealed {
		barMax = c.Total + 1
	}
	desc := b.Status + " · " + stateCounts(c) + w.rateETA(b)
	if w.bar == nil {
		w.bar = progressbar.NewOptions64(barMax,
			progressbar.OptionSetWriter(w.Out),
			progressbar.OptionSetWidth(barWidth),
			progressbar.OptionShowCount(),
			progressbar.OptionSetPredictTime(false),
			progressbar.OptionSetElapsedTime(true),
			progressbar.OptionShowDescriptionAtLineEnd(),
			progressbar.OptionSetDescription(desc),
			progressbar.OptionUseANSICodes(true),
			progressbar.OptionOnCompletion(func() { fmt.Fprintln(w.Out) }),
		)
	}
	if w.bar.GetMax64() != barMax {
		w.bar.ChangeMax64(barMax)
	}
	_ = w.bar.Set64(min(c.Terminal(), barMax))
	w.bar.Describe(desc)
}

// endBar leaves the bar's last frame on its own line.
func (w *Watcher) endBar() {
	if w.bar != nil && !w.bar.IsFinished() {
		_ = w.bar.Exit()
	}
}

// problem reports a failed poll without ending the watch.
func (w *Watcher) problem(err error) {
	if w.Terminal && w.bar != nil {
		w.bar.Describe("retrying: " + err.Error())
		return
	}
	fmt.Fprintf(w.Out, "%s %s: poll failed, retrying: %v\n", w.elapsed(), w.BatchID, err)
}

func (w *Watcher) elapsed() string {
	if w.start.IsZero() {
		return fmt.Sprintf("[%6s]", "0s")
	}
	return fmt.Sprintf("[%6s]", time.Since(w.start).Round(100*time.Millisecond))
}

// rate is the requests ended per second since the watch began.
func (w *Watcher) rate(b api.BatchObject) float64 {
	d := time.Since(w.start).Seconds()
	n := b.Salvo.Counts.Terminal() - w.first.Salvo.Counts.Terminal()
	if w.start.IsZero() || d <= 0 || n <= 0 {
		return 0
	}
	return float64(n) / d
}

// rateETA is " · 12.3 req/s · ETA 8s", or less when not known yet.
func (w *Watcher) rateETA(b api.BatchObject) string {
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

// Throughput is the wall time of a final batch and its requests ended per
// second (0 when the wall time is 0). The wall time counts from Since when
// set, else from the watch's first poll when no request had ended by
// then (both precise), else from the batch's creation to its final time
// (whole seconds).
func (w *Watcher) Throughput(b api.BatchObject) (time.Duration, float64) {
	wall := time.Since(w.start)
	if w.first.Salvo.Counts.Terminal() > 0 {
		if at, created := FinalAt(b), b.CreatedAt; at != nil && created != nil {
			wall = time.Duration(*at-*created) * time.Second
		}
	}
	if wall <= 0 {
		return wall, 0
	}
	return wall, float64(b.Salvo.Counts.Terminal()) / wall.Seconds()
}

// summary prints the final status, the counts, the wall time and the
// throughput, the results and, with Stats, the upstream figures.
func (w *Watcher) summary(b api.BatchObject) {
	c := b.Salvo.Counts
	wall, r := w.Throughput(b)
	rate := "-"
	if r > 0 {
		rate = fmt.Sprintf("%.1f", r)
	}
	fmt.Fprintf(w.Out, "batch %s %s in %s: %d request(s), %s; %s req/s\n",
		b.ID, b.Status, wall.Round(100*time.Millisecond), c.Total, EndedCounts(c), rate)
	fmt.Fprintf(w.Out, "results: %d published, %d missing\n", b.Salvo.ResultsPublished, b.Salvo.ResultsMissing)
	if w.Stats == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), statsTimeout)
	defer cancel()
	st, err := w.Stats(ctx)
	switch {
	case err != nil:
		fmt.Fprintf(w.Out, "upstream: no retry or latency figures (%v)\n", err)
	case st.Timed == 0:
		fmt.Fprintf(w.Out, "upstream: %d retries; no upstream call timed\n", st.Retries)
	default:
		fmt.Fprintf(w.Out, "upstream: %d retries; latency of the last attempt p50 %s, p99 %s (%d calls)\n",
			st.Retries, st.P50.Round(time.Millisecond), st.P99.Round(time.Millisecond), st.Timed)
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

// EndedCounts lists the terminal counters.
func EndedCounts(c lifecycle.Counts) string {
	return fmt.Sprintf("completed %d, failed %d, expired %d, canceled %d, superseded %d",
		c.Completed, c.Failed, c.Expired, c.Canceled, c.Superseded)
}

// FinalAt is the time a final batch reached its status, nil before.
func FinalAt(b api.BatchObject) *int64 {
	for _, t := range []*int64{b.CompletedAt, b.FailedAt, b.ExpiredAt, b.CancelledAt} {
		if t != nil {
			return t
		}
	}
	return nil
}
