package demo

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/salvo-run/salvo/internal/producer"
	"github.com/salvo-run/salvo/pkg/lifecycle"
)

// Summary is what a run did.
type Summary struct {
	BatchID string
	// Status and Counts are the batch's at the end.
	Status lifecycle.BatchStatus
	Counts lifecycle.Counts
	// Lines is the number of input lines; LineErrors how many were
	// rejected; Requests how many were submitted.
	Lines      int
	LineErrors int
	Requests   int
	// Results is the number of results published, as the store counts them.
	Results int
	// Retries counts attempts beyond the first across the results (calls
	// re-queued after a 429 or 500).
	Retries int
	// UpstreamCalls is every call the mock upstream received, in-process
	// transport retries included.
	// UpstreamCalls is 0 with a real upstream (UpstreamURL).
	UpstreamCalls int64
	// Wall is the time from the submit to the batch's final state; Rate
	// is the requests ended per second over it.
	Wall time.Duration
	Rate float64
	// Shares are the requests each worker ended, from its own
	// salvo_requests_total.
	Shares []Share
	// Elapsed is the run from its start (the parts' start-up included) to
	// the summary.
	Elapsed time.Duration
	// Input is the input file; Output and Errors are the files written,
	// with their line counts.
	Input       string
	Output      string
	Errors      string
	OutputLines int
	ErrorLines  int
	// Redis says which Redis was used; StandIn is true for miniredis.
	Redis   string
	StandIn bool
}

// Write prints the summary.
func (s Summary) Write(w io.Writer) {
	p := func(format string, args ...any) { _, _ = fmt.Fprintf(w, format, args...) }
	p("summary\n")
	p("  batch     %s %s: wall time %.2fs from submit to final, %.1f req/s\n", s.BatchID, s.Status, s.Wall.Seconds(), s.Rate)
	p("  requests  %d submitted: %d completed, %d failed, %d canceled, %d expired (%d input line(s) rejected)\n",
		s.Requests, s.Counts.Completed, s.Counts.Failed, s.Counts.Canceled, s.Counts.Expired, s.LineErrors)
	parts := make([]string, 0, len(s.Shares))
	for _, sh := range s.Shares {
		parts = append(parts, fmt.Sprintf("%s ended %d", sh.Worker, sh.Ended))
	}
	p("  workers   %s (each worker's salvo_requests_total)\n", strings.Join(parts, ", "))
	if s.UpstreamCalls > 0 {
		p("  retries   %d re-queued attempt(s) after 429/500; %d upstream calls for %d requests (resets retried in-process)\n",
			s.Retries, s.UpstreamCalls, s.Requests)
	} else {
		p("  retries   %d re-queued attempt(s)\n", s.Retries)
	}
	p("  input     %s\n", s.Input)
	p("  output    %s (%d line(s))\n", s.Output, s.OutputLines)
	p("  errors    %s (%d line(s))\n", s.Errors, s.ErrorLines)
	p("  redis     %s\n", s.Redis)
	p("  run       %.1fs since the demo started, start-up included\n", s.Elapsed.Seconds())
}

// writeFiles writes the output and error files as `producer results`
// does (internal/producer): the batch's results in input order, the
// input's bad lines in the error file at their line.
func (r *runner) writeFiles(ctx context.Context, nc *nats.Conn, input, prefix string, sum *Summary) error {
	for _, path := range []string{r.o.Output, r.o.Errors} {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return fmt.Errorf("demo: %w", err)
		}
	}
	w, err := producer.WriteResults(ctx, nc, producer.ResultsOptions{
		BatchID: sum.BatchID,
		Output:  r.o.Output,
		Errors:  r.o.Errors,
		Input:   input,
		Prefix:  prefix,
		Logger:  r.o.Logger,
	})
	if err != nil {
		return fmt.Errorf("demo: results: %w", err)
	}
	sum.OutputLines, sum.ErrorLines = w.Output, w.Errors
	return nil
}
