package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/salvo-run/salvo/internal/childproc"
	"github.com/salvo-run/salvo/internal/mockupstream"

	"github.com/salvo-run/salvo/pkg/lifecycle"
)

// The latency scenarios time publish → upstream receipt. The upstream is
// internal/mockupstream served by this process (the same handler and
// answers as cmd/mockupstream), so that both timestamps come from one clock
// without a protocol between processes: the publish time is taken just
// before the JetStream publish, the receipt time in the mock's OnRequest
// hook, when the call's body has been read. nats-server, redis-server and
// the system under test are still their own processes. At these rates the
// extra load on this process is negligible.

// latencyFigures are one round of one system in a latency scenario.
type latencyFigures struct {
	Scenario  string    `json:"scenario"`
	Entry     string    `json:"entry"`
	Round     int       `json:"round"`
	LatencyMs []float64 `json:"latency_ms"` // publish → upstream receipt, in publish order
}

// receipts records when the upstream received each request id.
type receipts struct {
	mu  sync.Mutex
	at  map[string]time.Time
	new chan struct{}
}

func (r *receipts) record(_ *http.Request, id, _ string) {
	now := time.Now()
	r.mu.Lock()
	if _, seen := r.at[id]; !seen {
		r.at[id] = now
	}
	r.mu.Unlock()
	select {
	case r.new <- struct{}{}:
	default:
	}
}

func (r *receipts) get(id string) (time.Time, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	t, ok := r.at[id]
	return t, ok
}

// wait blocks until id was received or ctx ends.
func (r *receipts) wait(ctx context.Context, id string) (time.Time, error) {
	for {
		if t, ok := r.get(id); ok {
			return t, nil
		}
		select {
		case <-r.new:
		case <-time.After(5 * time.Millisecond):
		case <-ctx.Done():
			return time.Time{}, fmt.Errorf("waiting for %s at the upstream: %w", id, ctx.Err())
		}
	}
}

func runLatency(ctx context.Context, p *childproc.Set, b bins, o *options, sc string, stdout io.Writer) ([]*latencyFigures, error) {
	entries := []entry{
		{label: "salvo", sys: &salvo{b: b, concurrency: 64, workers: 1}},
		{label: "pipeline", sys: &pipeline{b: b, handlers: 64}},
	}
	if sc == "coldmodel" {
		// Announced (salvo's own publishers) and raw (found by the
		// discovery leader's listing, every second).
		entries = []entry{
			{label: "salvo-announced", sys: &salvo{b: b, concurrency: 64, workers: 1}, announce: true},
			{label: "salvo-raw", sys: &salvo{b: b, concurrency: 64, workers: 1}},
			{label: "pipeline", sys: &pipeline{b: b, handlers: 64}},
		}
	}
	if entries = o.only(entries); len(entries) == 0 {
		return nil, fmt.Errorf("-systems %q: no entry of %s", o.systems, sc)
	}
	var all []*latencyFigures
	for r := range o.latencyRounds {
		for _, e := range entries {
			f, err := latencyRound(ctx, p, b, o, sc, e, r+1)
			if err != nil {
				return all, fmt.Errorf("%s round %d: %w", e.label, r+1, err)
			}
			fmt.Fprintf(stdout, "round %d %s %s: %d requests, p50 %.2f ms, p99 %.2f ms, max %.2f ms\n", r+1, sc, e.label,
				len(f.LatencyMs), percentile(f.LatencyMs, 50), percentile(f.LatencyMs, 99), slices.Max(f.LatencyMs))
			all = append(all, f)
		}
	}
	title := fmt.Sprintf("%d req/s for %s, one model the system already consumes", o.latencyRate, o.latencyFor)
	if sc == "coldmodel" {
		title = fmt.Sprintf("%d requests one at a time, each for a model no worker has seen, the system idle", o.coldN)
	}
	fmt.Fprintf(stdout, "\n### %s: publish → upstream receipt, %s, %d rounds\n\n", sc, title, o.latencyRounds)
	fmt.Fprintf(stdout, "| system | requests | p50 ms (all rounds) | p99 ms (all rounds) | max ms | per-round p50 | per-round p99 |\n|---|---|---|---|---|---|---|\n")
	for _, e := range entries {
		var pooled, p50s, p99s []float64
		for _, f := range all {
			if f.Entry == e.label {
				pooled = append(pooled, f.LatencyMs...)
				p50s = append(p50s, percentile(f.LatencyMs, 50))
				p99s = append(p99s, percentile(f.LatencyMs, 99))
			}
		}
		fmt.Fprintf(stdout, "| %s | %d | %.2f | %.2f | %.2f | %s | %s |\n", e.label, len(pooled),
			percentile(pooled, 50), percentile(pooled, 99), slices.Max(pooled), joinMs(p50s), joinMs(p99s))
	}
	return all, nil
}

func joinMs(xs []float64) string {
	s := ""
	for i, x := range xs {
		if i > 0 {
			s += ", "
		}
		s += fmt.Sprintf("%.2f", x)
	}
	return s
}

// percentile is the nearest-rank percentile of xs.
func percentile(xs []float64, pct float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	i := int(pct/100*float64(len(s))+0.999999) - 1
	return s[min(max(i, 0), len(s)-1)]
}

func latencyRound(ctx context.Context, p *childproc.Set, b bins, o *options, sc string, e entry, round int) (*latencyFigures, error) {
	ctx, cancel := context.WithTimeout(ctx, o.roundTimeout)
	defer cancel()
	rec := &receipts{at: map[string]time.Time{}, new: make(chan struct{}, 1)}
	mock, err := mockupstream.New(mockupstream.Options{OnRequest: rec.record})
	if err != nil {
		return nil, err
	}
	defer mock.Close()
	in, err := startInfra(ctx, p, b, nil, mock.URL())
	if err != nil {
		return nil, err
	}
	defer in.stop()
	if err := e.sys.prepare(ctx, in); err != nil {
		return nil, err
	}
	_, stop, err := startSUT(ctx, p, e.sys, in)
	defer stop()
	if err != nil {
		return nil, err
	}
	js, err := jetstream.New(in.nc)
	if err != nil {
		return nil, err
	}
	f := &latencyFigures{Scenario: sc, Entry: e.label, Round: round}
	publish := func(model, id string, i int) (time.Time, error) {
		m, err := requestMsg(model, id, benchBody(model, i))
		if err != nil {
			return time.Time{}, err
		}
		t := time.Now()
		_, err = js.PublishMsgAsync(m, jetstream.WithStallWait(time.Minute))
		return t, err
	}
	// Warm up: the system runs and has served the benchmark's model already,
	// so the steady-rate scenario does not time the model's discovery.
	if _, err := publish(benchModel, "warm", 0); err != nil {
		return nil, err
	}
	if _, err := rec.wait(ctx, "warm"); err != nil {
		return nil, err
	}
	if err := waitResults(ctx, in, 1); err != nil {
		return nil, err
	}
	if sc == "coldmodel" {
		for i := range o.coldN {
			id := fmt.Sprintf("cold-%d", i)
			model := fmt.Sprintf("cold/model-%d-%d:v1", round, i)
			start := time.Now()
			if e.announce {
				tok, err := lifecycle.EncodeToken(model)
				if err != nil {
					return nil, err
				}
				if _, err := js.Publish(ctx, "$KV."+discoveryBucket+".model."+tok, []byte(model)); err != nil {
					return nil, fmt.Errorf("announce %s: %w", model, err)
				}
			}
			if _, err := publish(model, id, i); err != nil {
				return nil, err
			}
			sent := start
			at, err := rec.wait(ctx, id)
			if err != nil {
				return nil, err
			}
			f.LatencyMs = append(f.LatencyMs, float64(at.Sub(sent).Microseconds())/1000)
			// Idle again before the next one: its result is out.
			if err := waitResults(ctx, in, uint64(i+2)); err != nil {
				return nil, err
			}
		}
		return f, nil
	}

	// Steady rate: one publish per tick.
	n := int(o.latencyFor.Seconds() * float64(o.latencyRate))
	sent := make([]time.Time, n)
	tk := time.NewTicker(time.Second / time.Duration(o.latencyRate))
	defer tk.Stop()
	for i := range n {
		select {
		case <-tk.C:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if sent[i], err = publish(benchModel, fmt.Sprintf("lat-%06d", i), i); err != nil {
			return nil, err
		}
	}
	for i := range n {
		at, err := rec.wait(ctx, fmt.Sprintf("lat-%06d", i))
		if err != nil {
			return nil, err
		}
		f.LatencyMs = append(f.LatencyMs, float64(at.Sub(sent[i]).Microseconds())/1000)
	}
	return f, waitResults(ctx, in, uint64(n)+1)
}

// waitResults waits until the results stream holds n results.
func waitResults(ctx context.Context, in *infra, n uint64) error {
	return childproc.WaitFor(ctx, time.Minute, "results", nil, func(ctx context.Context) error {
		got, err := in.streamMsgs(ctx, resultsStream)
		if err == nil && got < n {
			err = fmt.Errorf("%d of %d results", got, n)
		}
		return err
	})
}
