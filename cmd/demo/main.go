// Command demo runs salvo's main job in one process: NATS (an embedded
// nats-server, or NATS_URL), a Redis (REDIS_URL, else a spawned
// redis-server, else a clearly labelled in-process stand-in), two
// workers, an upstream (a mock OpenAI-compatible API, or
// SALVO_DEMO_UPSTREAM_URL with OPENAI_API_KEY), and a producer that
// submits the input batch, shows its progress, writes its output and error
// files and prints a summary. It ends by itself.
//
//	go run ./cmd/demo -input examples/batch.jsonl -output out/demo-output.jsonl -errors out/demo-errors.jsonl
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/rs/zerolog"

	"github.com/salvo-run/salvo/internal/demo"
	"github.com/salvo-run/salvo/internal/producer"
	"github.com/salvo-run/salvo/pkg/httpclient"
)

// The environment the demo reads (besides the flags).
const (
	envNATS     = "NATS_URL"
	envRedis    = "REDIS_URL"
	envUpstream = "SALVO_DEMO_UPSTREAM_URL"
	envModel    = "SALVO_DEMO_MODEL"
)

const envHelp = `
Environment:
  NATS_URL                 run on this NATS server (JetStream on) instead of an
                           embedded one; the demo's streams are deleted at the end
  REDIS_URL                run on this Redis; the demo's keys are deleted at the end
  SALVO_DEMO_UPSTREAM_URL  call this OpenAI-compatible API (e.g. https://api.openai.com)
                           instead of the mock
  OPENAI_API_KEY           bearer key for SALVO_DEMO_UPSTREAM_URL (never printed)
  SALVO_DEMO_MODEL         replace every request's body.model with this model
`

func main() {
	if err := run(os.Args[1:], os.Getenv); err != nil {
		fmt.Fprintln(os.Stderr, err) // errors carry their "demo:" prefix
		os.Exit(1)
	}
}

func run(args []string, getenv func(string) string) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	var (
		input    = fs.String("input", demo.InputDefault, "OpenAI batch input file (JSONL)")
		output   = fs.String("output", demo.OutputDefault, "output file: one line per completed request")
		errs     = fs.String("errors", demo.ErrorsDefault, "error file: failed requests and rejected input lines")
		redis    = fs.String("redis", string(demo.RedisAuto), "auto | url (REDIS_URL) | server (spawn redis-server) | miniredis (dev stand-in)")
		workers  = fs.Int("workers", demo.WorkersDefault, "in-process workers")
		timeout  = fs.Duration("timeout", demo.TimeoutDefault, "bound on the whole run")
		logLevel = fs.String("log-level", "warn", "component log level on stderr: debug|info|warn|error")
	)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: demo [flags]\n\nFlags:\n")
		fs.PrintDefaults()
		fmt.Fprint(fs.Output(), envHelp)
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	lvl, err := zerolog.ParseLevel(*logLevel)
	if err != nil {
		return fmt.Errorf("-log-level: %w", err)
	}
	log := zerolog.New(zerolog.ConsoleWriter{Out: os.Stderr}).Level(lvl).With().Timestamp().Logger()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	_, err = demo.Run(ctx, demo.Options{
		Input:       *input,
		Output:      *output,
		Errors:      *errs,
		Redis:       demo.RedisMode(*redis),
		RedisURL:    getenv(envRedis),
		NATSURL:     getenv(envNATS),
		Workers:     *workers,
		UpstreamURL: getenv(envUpstream),
		APIKey:      httpclient.Secret(getenv(demo.APIKeyEnv)),
		Model:       getenv(envModel),
		Terminal:    producer.IsTerminal(os.Stdout),
		Timeout:     *timeout,
		Out:         os.Stdout,
		Logger:      &log,
	})
	return err
}
