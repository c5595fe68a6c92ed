// Command loadbench measures salvo's worker with every part in its own OS
// process — nats-server, redis-server, the mock upstream (cmd/mockupstream)
// and the system under test — against two baselines measured in the same
// run, in interleaved rounds: bench/pipeline (the minimal pipeline of the
// same shape) and bench/asynqbase (asynq doing only the HTTP call).
//
// Each round of each system starts fresh backing processes on loopback
// ports, queues the requests ahead, starts the system under test and
// measures from its first to its last finished request: req/s, the CPU
// time per request of every process (utime+stime from /proc/<pid>/stat)
// and the peak RSS (VmHWM) of the system under test. Every child process
// is in its own process group and is killed at the end, also on failure,
// timeout or SIGINT.
//
//	make bench-load                                  # builds bin/, runs the default scenarios
//	bin/loadbench -scenarios throughput -n 50000 -rounds 3
//
// Scenarios (-scenarios, comma-separated): throughput, inflight, latency,
// coldmodel, retry, multi, ratelimit, hold, adaptive. docs/BENCHMARKS.md describes each and records
// the figures.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/salvo-run/salvo/internal/childproc"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "loadbench:", err)
		os.Exit(1)
	}
}

type options struct {
	scenarios     string
	binDir        string
	redisServer   string
	out, logFile  string
	report        string
	rounds        int
	timeout       time.Duration
	roundTimeout  time.Duration
	n             int
	handlers      string
	inflightN     int
	inflightConc  int
	inflightLat   time.Duration
	latencyRate   int
	latencyFor    time.Duration
	coldN         int
	latencyRounds int
	systems       string
	retryN        int
	multiN        int
	multiLatency  time.Duration
	multiWorkers  int
	multiHandlers int
	rlN           int
	holdN         int
	adaptiveN     int
}

func parseFlags(args []string) (*options, error) {
	fs := flag.NewFlagSet("loadbench", flag.ContinueOnError)
	o := &options{}
	fs.StringVar(&o.scenarios, "scenarios", "throughput", "comma-separated: throughput, inflight, latency, coldmodel, retry, multi, ratelimit, hold, adaptive")
	fs.StringVar(&o.binDir, "bin", "bin", "directory of nats-server, worker, mockupstream, pipeline and asynqbase")
	fs.StringVar(&o.redisServer, "redis-server", "/usr/bin/redis-server", "redis-server binary")
	fs.StringVar(&o.out, "out", "bin/loadbench.json", "file for the raw figures of every round (JSON)")
	fs.StringVar(&o.logFile, "log", "bin/loadbench.log", "file for the child processes' output")
	fs.StringVar(&o.report, "report", "bin/loadbench.txt", "file for a copy of what is printed (tables included)")
	fs.IntVar(&o.rounds, "rounds", 3, "interleaved rounds per scenario")
	fs.StringVar(&o.systems, "systems", "", "comma-separated entries to run (e.g. salvo or salvo,pipeline); empty runs all; ratios need the first entry")
	fs.DurationVar(&o.timeout, "timeout", 30*time.Minute, "bound of the whole run")
	fs.DurationVar(&o.roundTimeout, "round-timeout", 5*time.Minute, "bound of one round of one system")
	fs.IntVar(&o.n, "n", 50000, "throughput: requests per round")
	fs.StringVar(&o.handlers, "handlers", "64,256", "throughput: concurrencies (worker -concurrency, pipeline -handlers, asynq Concurrency)")
	fs.IntVar(&o.inflightN, "inflight-n", 50000, "inflight: requests per round")
	fs.IntVar(&o.inflightConc, "inflight-concurrency", 10000, "inflight: calls in flight")
	fs.DurationVar(&o.inflightLat, "inflight-latency", 5*time.Second, "inflight: upstream latency")
	fs.IntVar(&o.latencyRate, "latency-rate", 100, "latency: requests per second")
	fs.DurationVar(&o.latencyFor, "latency-duration", 10*time.Second, "latency: publishing time per round")
	fs.IntVar(&o.coldN, "cold-n", 50, "coldmodel: requests per round, each for a model never seen")
	fs.IntVar(&o.latencyRounds, "latency-rounds", 1, "latency and coldmodel: interleaved rounds")
	fs.IntVar(&o.retryN, "retry-n", 20000, "retry: requests per round")
	fs.IntVar(&o.multiN, "multi-n", 20000, "multi: requests per round")
	fs.DurationVar(&o.multiLatency, "multi-latency", 20*time.Millisecond, "multi: upstream latency per call")
	fs.IntVar(&o.multiWorkers, "multi-workers", 3, "multi: worker processes compared with one")
	fs.IntVar(&o.multiHandlers, "multi-concurrency", 64, "multi: -concurrency of each worker")
	fs.IntVar(&o.rlN, "ratelimit-n", 5000, "ratelimit: requests per round (at 600 RPM, 5,000 take 8-9 minutes)")
	fs.IntVar(&o.holdN, "hold-n", 3000, "hold: requests per round")
	fs.IntVar(&o.adaptiveN, "adaptive-n", 10000, "adaptive: requests per round")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if o.rounds < 1 || o.n < 1 || o.inflightN < 1 || o.retryN < 1 || o.multiN < 1 || o.coldN < 1 || o.latencyRate < 1 || o.latencyRounds < 1 {
		return nil, errors.New("-rounds and every request count must be at least 1")
	}
	return o, nil
}

func run(args []string, stdout io.Writer) error {
	o, err := parseFlags(args)
	if err != nil {
		return err
	}
	b := binsIn(o.binDir, o.redisServer)
	for _, path := range []string{b.natsServer, b.redisServer, b.mockupstream, b.worker, b.pipeline, b.asynqbase} {
		if _, err := os.Stat(path); err != nil {
			return fmt.Errorf("%w (make bench-load builds the binaries into bin/)", err)
		}
	}
	logs, err := os.Create(o.logFile)
	if err != nil {
		return err
	}
	defer logs.Close()
	report, err := os.Create(o.report)
	if err != nil {
		return err
	}
	defer report.Close()
	stdout = io.MultiWriter(stdout, report)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	p := &childproc.Set{Ctx: ctx, Logs: logs}
	defer p.KillAll()

	var raw struct {
		Rounds  []*figures        `json:"rounds"`
		Latency []*latencyFigures `json:"latency"`
	}
	defer func() { // whatever was measured, also when a later round failed
		if data, err := json.MarshalIndent(&raw, "", "  "); err == nil {
			_ = os.WriteFile(o.out, data, 0o644)
		}
	}()
	for _, sc := range strings.Split(o.scenarios, ",") {
		switch sc = strings.TrimSpace(sc); sc {
		case "latency", "coldmodel":
			lat, err := runLatency(ctx, p, b, o, sc, stdout)
			raw.Latency = append(raw.Latency, lat...)
			if err != nil {
				return fmt.Errorf("%s: %w", sc, err)
			}
			continue
		}
		groups, err := groupsOf(sc, o, b)
		if err != nil {
			return err
		}
		for _, g := range groups {
			if g.entries = o.only(g.entries); len(g.entries) == 0 {
				return fmt.Errorf("-systems %q: no entry of %s %s", o.systems, sc, g.title)
			}
			rounds := make([][]*figures, o.rounds)
			for r := range o.rounds {
				rounds[r] = make([]*figures, len(g.entries))
				for i, e := range g.entries {
					f, err := measure(ctx, p, b, g, e, r+1, o.roundTimeout)
					if err != nil {
						return fmt.Errorf("%s %s: %w", sc, g.title, err)
					}
					fmt.Fprintf(stdout, "round %d %s %s %s: %.0f req/s, SUT %.0f CPU-µs/req, all %.0f CPU-µs/req, SUT peak RSS %.1f MiB%s\n",
						r+1, sc, g.title, e.label, f.ReqPerS, f.CPUus["sut"], f.cpuTotal(), f.PeakRSSMiB, rateLimitLine(f))
					rounds[r][i] = f
					raw.Rounds = append(raw.Rounds, f)
				}
			}
			writeGroup(stdout, g, rounds)
		}
	}
	return nil
}

// groupsOf builds the tables of a throughput-like scenario.
func groupsOf(sc string, o *options, b bins) ([]*group, error) {
	switch sc {
	case "throughput":
		var gs []*group
		for _, hs := range strings.Split(o.handlers, ",") {
			h, err := strconv.Atoi(strings.TrimSpace(hs))
			if err != nil || h < 1 {
				return nil, fmt.Errorf("-handlers: %q is not a positive number", hs)
			}
			gs = append(gs, &group{scenario: sc, title: "upstream without latency, concurrency " + strconv.Itoa(h), n: o.n,
				entries: []entry{
					{label: "salvo", sys: &salvo{b: b, concurrency: h, workers: 1}, mockArgs: []string{}},
					{label: "pipeline", sys: &pipeline{b: b, handlers: h}, mockArgs: []string{}},
					{label: "asynq", sys: &asynqBase{b: b, concurrency: h}, mockArgs: []string{}},
				}})
		}
		return gs, nil
	case "inflight":
		lat := []string{"-latency", o.inflightLat.String()}
		return []*group{{scenario: sc, n: o.inflightN,
			title: fmt.Sprintf("upstream latency %s, concurrency %d", o.inflightLat, o.inflightConc),
			entries: []entry{
				{label: "salvo", sys: &salvo{b: b, concurrency: o.inflightConc, workers: 1}, mockArgs: lat},
				{label: "pipeline", sys: &pipeline{b: b, handlers: o.inflightConc}, mockArgs: lat},
				{label: "salvo-h2c", sys: &salvo{b: b, concurrency: o.inflightConc, workers: 1, h2c: true}, mockArgs: lat},
			}}}, nil
	case "retry":
		return []*group{{scenario: sc, n: o.retryN, title: "salvo, concurrency 64, 20 % of calls answering 429 (Retry-After 200ms) vs none",
			entries: []entry{
				{label: "salvo 429s", sys: &salvo{b: b, concurrency: 64, workers: 1},
					mockArgs: []string{"-rate-limit", "0.2", "-retry-after", "200ms"}},
				{label: "salvo", sys: &salvo{b: b, concurrency: 64, workers: 1}, mockArgs: []string{}},
			}}}, nil
	case "ratelimit", "hold", "adaptive":
		return rateLimitGroups(sc, o, b), nil
	case "multi":
		lat := []string{"-latency", o.multiLatency.String()}
		return []*group{{scenario: sc, n: o.multiN,
			title: fmt.Sprintf("upstream latency %s, concurrency %d per worker", o.multiLatency, o.multiHandlers),
			entries: []entry{
				{label: fmt.Sprintf("salvo×%d", o.multiWorkers), sys: &salvo{b: b, concurrency: o.multiHandlers, workers: o.multiWorkers}, mockArgs: lat},
				{label: "salvo×1", sys: &salvo{b: b, concurrency: o.multiHandlers, workers: 1}, mockArgs: lat},
			}}}, nil
	}
	return nil, fmt.Errorf("-scenarios: unknown scenario %q", sc)
}

// only keeps the entries -systems names (all when it is empty).
func (o *options) only(es []entry) []entry {
	if o.systems == "" {
		return es
	}
	var kept []entry
	for _, e := range es {
		for _, name := range strings.Split(o.systems, ",") {
			if strings.TrimSpace(name) == e.label {
				kept = append(kept, e)
			}
		}
	}
	return kept
}
