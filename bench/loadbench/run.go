package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/salvo-run/salvo/internal/childproc"
)

// entry is one column of a scenario: a system under test against a mock
// upstream started with mockArgs.
type entry struct {
	label    string
	sys      system
	mockArgs []string
	// announce: a coldmodel request's model is announced first, as salvo's
	// publishers (producer, gateway, pkg/queue) do and PROTOCOL.md §1.1
	// tells a raw client to: a put of model.<token> in SALVO_DISCOVERY.
	announce bool
}

// group is one table: entries measured in interleaved rounds, each round
// with n requests; the first entry is compared with the others.
type group struct {
	scenario, title string
	n               int
	entries         []entry
}

// figures are one measured round of one entry.
type figures struct {
	Scenario string  `json:"scenario"`
	Group    string  `json:"group"`
	Entry    string  `json:"entry"`
	Round    int     `json:"round"`
	N        int     `json:"n"`
	Measured uint64  `json:"measured"`  // requests finished inside the window
	WindowS  float64 `json:"window_s"`  // first to last finished request
	ReqPerS  float64 `json:"req_per_s"` // Measured / WindowS
	// CPUus is CPU-µs per measured request of each process: "sut" (all
	// processes under test), "nats-server", "redis-server", "mockupstream",
	// "loadgen" (this process: it polls the counts; publishing is done
	// before the window).
	CPUus      map[string]float64 `json:"cpu_us_per_req"`
	PeakRSSMiB float64            `json:"sut_peak_rss_mib"` // VmHWM, summed over the processes under test
	// Mock are the mock upstream's limit counters (scenarios ratelimit, hold).
	Mock *mockStats `json:"mock,omitempty"`
	// AdaptiveLimit is the first worker's adaptive concurrency limit at the
	// end of the run (scenario adaptive).
	AdaptiveLimit int `json:"adaptive_limit,omitempty"`
}

// cpuTotal is the CPU-µs per request of every process together.
func (f *figures) cpuTotal() float64 {
	var t float64
	for _, v := range f.CPUus {
		t += v
	}
	return t
}

// measure runs one round of one entry on fresh backing processes.
func measure(ctx context.Context, p *childproc.Set, b bins, g *group, e entry, round int, timeout time.Duration) (*figures, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	in, err := startInfra(ctx, p, b, e.mockArgs, "")
	if err != nil {
		return nil, err
	}
	defer in.stop()
	if err := e.sys.prepare(ctx, in); err != nil {
		return nil, err
	}
	if err := e.sys.load(ctx, in, g.n); err != nil {
		return nil, err
	}
	sut, stop, err := startSUT(ctx, p, e.sys, in)
	defer stop()
	if err != nil {
		return nil, err
	}
	named := map[string][]*childproc.Child{"sut": sut, "nats-server": {in.nats}, "redis-server": {in.redis}}
	if in.mock != nil {
		named["mockupstream"] = []*childproc.Child{in.mock}
	}
	snapshot := func() (map[string]time.Duration, error) {
		m := map[string]time.Duration{}
		for name, cs := range named {
			for _, c := range cs {
				d, err := cpuTime(c.PID())
				if err != nil {
					return nil, fmt.Errorf("%s: %w", c.Name, err)
				}
				m[name] += d
			}
		}
		d, err := cpuTime(os.Getpid())
		m["loadgen"] = d
		return m, err
	}

	var (
		t0, t1     time.Time
		c0, c1     uint64
		cpu0, cpu1 map[string]time.Duration
	)
	tk := time.NewTicker(5 * time.Millisecond)
	defer tk.Stop()
	for {
		c, err := e.sys.completed(ctx, in)
		if err != nil {
			return nil, err
		}
		now := time.Now()
		if t0.IsZero() && c > 0 {
			if cpu0, err = snapshot(); err != nil {
				return nil, err
			}
			t0, c0 = now, c
		}
		if c >= uint64(g.n) {
			if cpu1, err = snapshot(); err != nil {
				return nil, err
			}
			t1, c1 = now, c
			break
		}
		for _, s := range sut {
			if gone, err := s.Exited(); gone {
				return nil, err
			}
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%s round %d: %d of %d finished: %w", e.label, round, c, g.n, ctx.Err())
		case <-tk.C:
		}
	}
	f := &figures{Scenario: g.scenario, Group: g.title, Entry: e.label, Round: round, N: g.n,
		Measured: c1 - c0, WindowS: t1.Sub(t0).Seconds(), CPUus: map[string]float64{}}
	if f.Measured == 0 || f.WindowS <= 0 {
		return nil, fmt.Errorf("%s round %d: nothing measured (all %d finished at the first poll)", e.label, round, c1)
	}
	f.ReqPerS = float64(f.Measured) / f.WindowS
	for name, d := range cpu1 {
		f.CPUus[name] = float64((d - cpu0[name]).Microseconds()) / float64(f.Measured)
	}
	for _, c := range sut {
		kib, err := peakRSSKiB(c.PID())
		if err != nil {
			return nil, err
		}
		f.PeakRSSMiB += float64(kib) / 1024
	}
	if in.mock != nil {
		if f.Mock, err = fetchMockStats(ctx, in.mockURL); err != nil {
			return nil, err
		}
	}
	if s, ok := e.sys.(*salvo); ok && s.adaptive {
		if f.AdaptiveLimit, err = s.adaptiveLimit(ctx); err != nil {
			return nil, err
		}
	}
	if err := e.sys.verify(ctx, in, g.n); err != nil {
		return nil, fmt.Errorf("%s round %d: %w", e.label, round, err)
	}
	return f, nil
}

// startSUT starts the system under test; stop kills its processes, also
// those a failed start left behind.
func startSUT(ctx context.Context, p *childproc.Set, sys system, in *infra) (sut []*childproc.Child, stop func(), err error) {
	sut, err = sys.start(ctx, in)
	return sut, func() {
		for _, c := range sut {
			p.Kill(c)
		}
	}, err
}
