// Command mockupstream runs the OpenAI-compatible mock upstream
// (internal/mockupstream) as its own process, for the demo and benchmarks.
//
//	mockupstream -addr 127.0.0.1:8089 -latency 20ms -latency-max 80ms -fail-rate 0.1
//
// -fail-rate is split evenly between 429 (with -retry-after), 500 and 503;
// -rate-limit, -server-error, -unavailable and -reset-rate add to their share.
//
// -rpm and -tpm enforce OpenAI-style limits per API key and model, with
// x-ratelimit-* headers on every answer and 429s over budget; -hold-after N
// answers the N-th call 429 with retry-after -hold and logs every call
// that arrives for the same key and model while the hold lasts; -knee N is
// the self-hosted mode (latency grows past N calls in flight). GET
// /mock/stats returns the counters as JSON.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/salvo-run/salvo/internal/mockupstream"
	"github.com/salvo-run/salvo/internal/version"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "mockupstream:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("mockupstream", flag.ContinueOnError)
	var (
		addr        = fs.String("addr", "127.0.0.1:8089", "listen address")
		latency     = fs.Duration("latency", 0, "latency before answering (minimum when -latency-max is set)")
		latencyMax  = fs.Duration("latency-max", 0, "upper bound of a uniform latency (0 = fixed -latency)")
		failRate    = fs.Float64("fail-rate", 0, "fraction of calls failing, split evenly between 429, 500 and 503")
		rateLimit   = fs.Float64("rate-limit", 0, "extra fraction of calls answering 429")
		serverError = fs.Float64("server-error", 0, "extra fraction of calls answering 500")
		unavailable = fs.Float64("unavailable", 0, "extra fraction of calls answering 503")
		resetRate   = fs.Float64("reset-rate", 0, "fraction of calls whose connection is reset before the status line")
		retryAfter  = fs.Duration("retry-after", time.Second, "Retry-After sent with 429s")
		chunkDelay  = fs.Duration("chunk-delay", 0, "pause between SSE chunks")
		replyWords  = fs.Int("reply-words", mockupstream.ReplyWordsDefault, "words in each generated reply")
		seed        = fs.Uint64("seed", 1, "seed of the latency and failure draws")
		rpm         = fs.Int64("rpm", 0, "requests per minute per API key and model (0: unlimited)")
		tpm         = fs.Int64("tpm", 0, "tokens per minute per API key and model (0: unlimited)")
		holdAfter   = fs.Int64("hold-after", 0, "answer this call (1-based, all keys) 429 with retry-after -hold")
		hold        = fs.Duration("hold", 2*time.Second, "retry-after of the -hold-after call")
		holdGrace   = fs.Duration("hold-grace", 100*time.Millisecond, "calls arriving this soon after the hold began were already on their way")
		knee        = fs.Int("knee", 0, "self-hosted mode: latency grows as (in flight / knee)² past this many calls in flight")
		showVersion = fs.Bool("version", false, "print the version and exit")
	)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *showVersion {
		fmt.Println(version.Line("mockupstream")) //nolint:forbidigo // the command's output
		return nil
	}
	mix := &mockupstream.FailureMix{
		RateLimited: *failRate/3 + *rateLimit,
		ServerError: *failRate/3 + *serverError,
		Unavailable: *failRate/3 + *unavailable,
		Reset:       *resetRate,
		RetryAfter:  *retryAfter,
	}
	if total := mix.RateLimited + mix.ServerError + mix.Unavailable + mix.Reset; total > 1 || total < 0 {
		return fmt.Errorf("-fail-rate and the other rates add up to %.2f, must be within [0, 1]", total)
	}
	if *latencyMax != 0 && *latencyMax < *latency {
		return fmt.Errorf("-latency-max %s is below -latency %s", *latencyMax, *latency)
	}
	var limits *mockupstream.Limits
	if *rpm > 0 || *tpm > 0 || *holdAfter > 0 {
		limits = &mockupstream.Limits{RPM: *rpm, TPM: *tpm, HoldAfter: *holdAfter, Hold: *hold, HoldGrace: *holdGrace}
	}
	srv, err := mockupstream.New(mockupstream.Options{
		Addr:   *addr,
		Seed:   *seed,
		Limits: limits,
		Knee:   *knee,
		Logf: func(format string, args ...any) {
			fmt.Fprintf(os.Stderr, time.Now().Format("15:04:05.000 ")+format+"\n", args...)
		},
		Script: mockupstream.Script{
			Latency:    &mockupstream.Latency{Min: *latency, Max: *latencyMax},
			Failures:   mix,
			ChunkDelay: *chunkDelay,
			ReplyWords: *replyWords,
		},
	})
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	fmt.Fprintf(os.Stderr, "mockupstream: listening on %s\n", srv.URL())
	<-ctx.Done()
	srv.Close()
	fmt.Fprintf(os.Stderr, "mockupstream: stopped after %d calls\n", srv.Calls())
	return nil
}
