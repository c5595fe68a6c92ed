package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/salvo-run/salvo/internal/producer"
	"github.com/salvo-run/salvo/internal/telemetry"
)

// submitFlags are submit's own flags.
type submitFlags struct {
	wait        bool
	output      string
	errors      string
	window      string
	metadata    []string
	skipInvalid bool
	batchID     string
	interval    time.Duration
	limits      fileLimits
}

func (a *app) submitCmd() *cobra.Command {
	var sf submitFlags
	cmd := &cobra.Command{
		Use:   "submit FILE.jsonl",
		Short: "Validate a batch input file, create its batch and publish its requests",
		Long: `submit reads an OpenAI batch input file (JSONL: custom_id, method, url,
body), checks every line before publishing anything (all bad lines at once,
with their line numbers and fields), creates the batch through the batch
API, publishes the requests, and prints the batch id on stdout — alone on
its line, so BATCH=$(producer submit FILE) works; --json prints the batch
object instead. The file is streamed, never held in memory whole.

A file with bad lines is refused and nothing is published (exit 1), unless
--skip-invalid: then the valid lines are published and the bad ones
reported. --batch-id makes the submit idempotent: running it again after an
interruption publishes nothing twice and completes the batch.

The default limits are OpenAI's (50,000 requests, 200 MB, one endpoint per
file). --max-requests and --max-bytes are salvo's own caps too and can be
raised; one line must fit one NATS message (1 MB by default).

--wait follows the batch like watch does (progress on stderr), then writes
the --output and --errors files when given, and exits by the batch's final
status: 0 completed, 1 failed, expired or cancelled.`,
		Example: `  BATCH=$(producer submit requests.jsonl)
  producer submit --batch-id nightly-1 --metadata team=search requests.jsonl
  producer submit --wait --output out.jsonl --errors err.jsonl requests.jsonl
  producer submit --skip-invalid --completion-window 1h requests.jsonl`,
		Args: exactArgs("FILE.jsonl"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.submit(cmd, args[0], sf)
		},
	}
	f := cmd.Flags()
	f.BoolVar(&sf.wait, "wait", false, "follow the batch until it ends (progress on stderr), then write --output/--errors")
	f.StringVarP(&sf.output, "output", "o", "", "with --wait: write the OpenAI output file here")
	f.StringVar(&sf.errors, "errors", "", "with --wait: write the OpenAI error file here")
	f.StringVar(&sf.window, "completion-window", completionWindowDefault, "the batch's completion window (24h, 1h or a Go duration up to 168h)")
	f.StringArrayVar(&sf.metadata, "metadata", nil, "attach `key=value` to the batch (repeatable, at most 16)")
	f.BoolVar(&sf.skipInvalid, "skip-invalid", false, "publish the valid lines and report the bad ones instead of refusing the file")
	f.StringVar(&sf.batchID, "batch-id", "", "choose the batch id (idempotent: the same id and file submit once)")
	f.DurationVar(&sf.interval, "interval", producer.WatchIntervalDefault, "with --wait: time between two polls of the batch")
	sf.limits.register(f)
	return cmd
}

func (a *app) submit(cmd *cobra.Command, path string, sf submitFlags) error {
	if err := sf.limits.check(); err != nil {
		return err
	}
	if !sf.wait && (sf.output != "" || sf.errors != "") {
		return usagef("--output and --errors need --wait (or run producer results once the batch ended)")
	}
	if sf.interval <= 0 {
		return usagef("--interval %s must be positive", sf.interval)
	}
	meta, err := parseMetadata(sf.metadata)
	if err != nil {
		return err
	}
	nc, err := a.connect()
	if err != nil {
		return err
	}
	ctx := cmd.Context()
	// Tracing is off unless OTEL_TRACES_EXPORTER=otlp (internal/telemetry).
	tel, err := telemetry.Setup(ctx, "salvo-producer", a.io.getenv)
	if err != nil {
		return usagef("%v", err)
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = tel.Shutdown(sctx) // flushes the spans; a collector that is down costs no exit code
	}()
	res, err := producer.Submit(ctx, nc, producer.SubmitOptions{
		Path: path, BatchID: sf.batchID, CompletionWindow: sf.window, Metadata: meta,
		SkipInvalid: sf.skipInvalid, MaxRequests: sf.limits.maxRequests, MaxBytes: sf.limits.maxBytes,
		Prefix: a.conn.prefix, Tracer: tel.Tracer,
	})
	var invalid *producer.InvalidFileError
	if errors.As(err, &invalid) {
		for _, le := range invalid.Errors {
			fmt.Fprintf(a.io.err, "%s: %s\n", path, le.Error())
		}
		return &exitError{code: exitFailed, err: fmt.Errorf(
			"%s: %d of %d line(s) invalid, nothing published (fix them, or --skip-invalid publishes the valid lines)",
			path, len(invalid.Errors), invalid.Lines)}
	}
	if err != nil {
		return err
	}
	for _, le := range res.Rejected {
		fmt.Fprintf(a.io.err, "%s: skipped %s\n", path, le.Error())
	}
	b := res.Batch
	if !a.jsonOut {
		fmt.Fprintln(a.io.out, b.ID)
	}
	fmt.Fprintf(a.io.err, "batch %s: %d request(s) published, %d line(s) skipped\n", b.ID, res.Published, len(res.Rejected))
	if !sf.wait {
		if a.jsonOut {
			return a.printJSON(b)
		}
		return nil
	}

	c, err := a.client()
	if err != nil {
		return err
	}
	w := &producer.Watcher{Client: c, BatchID: b.ID, Out: a.io.err, Terminal: producer.IsTerminal(a.io.err),
		Stats: a.resultStats(b.ID), Interval: sf.interval, CallTimeout: a.conn.timeout}
	if b, err = w.Run(ctx); err != nil {
		return err
	}
	if sf.output != "" || sf.errors != "" {
		n, err := producer.WriteResults(ctx, nc, producer.ResultsOptions{
			BatchID: b.ID, Output: sf.output, Errors: sf.errors, Input: path, Prefix: a.conn.prefix,
			MaxRequests: sf.limits.maxRequests, MaxBytes: sf.limits.maxBytes,
		})
		if err != nil {
			return fmt.Errorf("results of %s: %w", b.ID, err)
		}
		reportWritten(a.io.err, sf.output, sf.errors, n)
	}
	if a.jsonOut {
		if err := a.printJSON(b); err != nil {
			return err
		}
	}
	return finalExit(b)
}
