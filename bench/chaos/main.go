// Command chaos is salvo's reliability suite (`make chaos`, `make
// chaos-short`): each scenario starts fresh servers on loopback — nats-server
// (one, or three clustered), redis-server (volatile, append-only, or a
// Sentinel set), the mock upstream in-process and three cmd/worker
// processes — publishes batches of requests, injects its faults on a
// bounded schedule, waits for every batch to end and runs the invariant
// checker (internal/invariant) over Redis, the RESULTS stream, the batch
// events and the mock upstream's call log. It prints each scenario's
// figures, writes them as JSON and a markdown table, and exits non-zero
// when any scenario fails. docs/RELIABILITY.md explains the scenarios and
// holds the figures of a full run.
//
//	chaos -bin bin -size full -scenarios kill-workers,upstream-faults
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/salvo-run/salvo/internal/childproc"
)

// procSet is the run's child processes and its log.
type procSet struct {
	set *childproc.Set
	log zerolog.Logger
}

func main() {
	if err := runMain(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		os.Exit(1)
	}
}

func runMain(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("chaos", flag.ContinueOnError)
	var (
		binDir    = fs.String("bin", "bin", "directory holding nats-server and worker")
		redisBin  = fs.String("redis-server", "redis-server", "redis-server binary")
		sizeName  = fs.String("size", "full", "full (several thousand requests per scenario) or short (a few hundred, for CI)")
		only      = fs.String("scenarios", "", "comma-separated scenarios to run (default all): "+strings.Join(scenarioNames(), ","))
		seed      = fs.Uint64("seed", 1, "seed of the fault schedules and the mock upstream")
		jsonOut   = fs.String("json", "bin/chaos.json", "write every scenario's figures here")
		mdOut     = fs.String("markdown", "bin/chaos.md", "write the figures table here")
		logOut    = fs.String("log", "bin/chaos.log", "the child processes' output")
		textOut   = fs.String("text", "bin/chaos.txt", "a copy of what is printed")
		totalTime = fs.Duration("timeout", 10*time.Minute, "bound of the whole run; the run fails when it is exceeded")
		window    = fs.Duration("duplicate-window", 0, "the streams' duplicate window in every scenario (default 30s; bad-inputs 5s)")
	)
	if err := fs.Parse(args); err != nil {
		return err
	}
	dupWindowFlag = *window
	sz, ok := sizes[*sizeName]
	if !ok {
		return fmt.Errorf("-size %q is not full or short", *sizeName)
	}
	scs, err := selectScenarios(*only)
	if err != nil {
		return err
	}
	rs, err := exec.LookPath(*redisBin)
	if err != nil {
		return fmt.Errorf("-redis-server: %w", err)
	}
	b := bins{natsServer: filepath.Join(*binDir, "nats-server"), redisServer: rs, worker: filepath.Join(*binDir, "worker")}
	for _, path := range []string{b.natsServer, b.worker} {
		if _, err := os.Stat(path); err != nil {
			return fmt.Errorf("-bin: %w (build them with make chaos-build)", err)
		}
	}
	logs, err := os.Create(*logOut)
	if err != nil {
		return err
	}
	defer logs.Close()
	text, err := os.Create(*textOut)
	if err != nil {
		return err
	}
	defer text.Close()
	stdout = io.MultiWriter(stdout, text)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *totalTime)
	defer cancel()
	zerolog.TimeFieldFormat = time.RFC3339Nano
	log := zerolog.New(zerolog.ConsoleWriter{Out: stderr, NoColor: true, TimeFormat: "15:04:05.000"}).
		Level(zerolog.InfoLevel).With().Timestamp().Logger()
	p := procSet{set: &childproc.Set{Ctx: ctx, Logs: logs}, log: log}
	defer p.set.KillAll()

	began := time.Now()
	var all []*figures
	var failed []string
	for i, sc := range scs {
		log.Info().Str("scenario", sc.name).Str("size", sz.name).Msg("start")
		f, err := sc.execute(ctx, b, p, sz, *seed+uint64(i))
		if err != nil {
			f = &figures{Scenario: sc.name, Title: sc.title, Size: sz.name, Failures: []string{err.Error()}}
		}
		f.print(stdout)
		all = append(all, f)
		if !f.Pass {
			failed = append(failed, sc.name)
		}
		if ctx.Err() != nil {
			break
		}
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		failed = append(failed, fmt.Sprintf("-timeout %s exceeded after %d of %d scenarios", *totalTime, len(all), len(scs)))
	}
	fmt.Fprintf(stdout, "\n%d scenarios in %s, %d failed\n\n", len(all), time.Since(began).Round(time.Second), len(failed))
	var md strings.Builder
	fmt.Fprintf(&md, "Size %s, seed %d, %d scenarios in %s.\n\n", sz.name, *seed, len(all), time.Since(began).Round(time.Second))
	markdownTable(&md, all)
	_, _ = io.WriteString(stdout, md.String())
	if err := os.WriteFile(*mdOut, []byte(md.String()), 0o600); err != nil {
		return err
	}
	if err := writeJSON(*jsonOut, all); err != nil {
		return err
	}
	if len(failed) > 0 {
		return fmt.Errorf("failed: %s", strings.Join(failed, ", "))
	}
	return nil
}

// selectScenarios returns the named scenarios in suite order (all when only is empty).
func selectScenarios(only string) ([]*scenario, error) {
	all := scenarios()
	if only == "" {
		return all, nil
	}
	var out []*scenario
	var unknown []string
	for name := range strings.SplitSeq(only, ",") {
		i := slices.IndexFunc(all, func(s *scenario) bool { return s.name == strings.TrimSpace(name) })
		if i < 0 {
			unknown = append(unknown, name)
			continue
		}
		out = append(out, all[i])
	}
	if len(unknown) > 0 {
		return nil, errors.New("-scenarios: unknown " + strings.Join(unknown, ", ") + "; known: " + strings.Join(scenarioNames(), ","))
	}
	return out, nil
}

func scenarioNames() []string {
	var names []string
	for _, s := range scenarios() {
		names = append(names, s.name)
	}
	return names
}
