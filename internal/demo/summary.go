package demo

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
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
	UpstreamCalls int64
	Elapsed       time.Duration
	// Output and Errors are the files written, with their line counts.
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
	p("  batch     %s %s in %.1fs\n", s.BatchID, s.Status, s.Elapsed.Seconds())
	p("  requests  %d submitted: %d completed, %d failed, %d canceled, %d expired (%d input line(s) rejected)\n",
		s.Requests, s.Counts.Completed, s.Counts.Failed, s.Counts.Canceled, s.Counts.Expired, s.LineErrors)
	p("  retries   %d re-queued attempt(s) after 429/500; %d upstream calls for %d requests (resets retried in-process)\n",
		s.Retries, s.UpstreamCalls, s.Requests)
	p("  output    %s (%d line(s))\n", s.Output, s.OutputLines)
	p("  errors    %s (%d line(s))\n", s.Errors, s.ErrorLines)
	p("  redis     %s\n", s.Redis)
}

// writeFiles writes the output and error files as `producer results`
// does (internal/producer): the batch's results in input order, the
// input's bad lines in the error file at their line; and reads the
// results' retries for the summary.
func (r *runner) writeFiles(ctx context.Context, nc *nats.Conn, prefix string, sum *Summary) error {
	for _, path := range []string{r.o.Output, r.o.Errors} {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return fmt.Errorf("demo: %w", err)
		}
	}
	w, err := producer.WriteResults(ctx, nc, producer.ResultsOptions{
		BatchID: sum.BatchID,
		Output:  r.o.Output,
		Errors:  r.o.Errors,
		Input:   r.o.Input,
		Prefix:  prefix,
		Logger:  r.o.Logger,
	})
	if err != nil {
		return fmt.Errorf("demo: results: %w", err)
	}
	sum.OutputLines, sum.ErrorLines = w.Output, w.Errors
	st, err := producer.ResultStats(ctx, nc, prefix, sum.BatchID)
	if err != nil {
		return fmt.Errorf("demo: results: %w", err)
	}
	sum.Retries = int(st.Retries)
	return nil
}
