// Command demo runs salvo's main job in one process on an embedded
// default: an in-process nats-server, a Redis (REDIS_URL, else a spawned
// redis-server, else a clearly labelled in-process stand-in), one worker,
// a mock OpenAI-compatible upstream, and a producer that submits the input
// batch and writes its output and error files. It ends by itself.
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
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, err) // errors carry their "demo:" prefix
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	var (
		input    = fs.String("input", demo.InputDefault, "OpenAI batch input file (JSONL)")
		output   = fs.String("output", demo.OutputDefault, "output file: one line per completed request")
		errs     = fs.String("errors", demo.ErrorsDefault, "error file: failed requests and rejected input lines")
		redis    = fs.String("redis", string(demo.RedisAuto), "auto | url (REDIS_URL) | server (spawn redis-server) | miniredis (dev stand-in)")
		timeout  = fs.Duration("timeout", demo.TimeoutDefault, "bound on the whole run")
		logLevel = fs.String("log-level", "warn", "component log level on stderr: debug|info|warn|error")
	)
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
		Input:    *input,
		Output:   *output,
		Errors:   *errs,
		Redis:    demo.RedisMode(*redis),
		RedisURL: os.Getenv("REDIS_URL"),
		Timeout:  *timeout,
		Out:      os.Stdout,
		Logger:   &log,
	})
	return err
}
