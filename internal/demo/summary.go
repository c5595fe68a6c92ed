package demo

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/salvo-run/salvo/pkg/batchfile"
	"github.com/salvo-run/salvo/pkg/lifecycle"
	"github.com/salvo-run/salvo/pkg/queue"
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
	// Results is the number of results received.
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

// writeFiles resolves result bodies kept in the object store and writes the
// output and error files.
func (r *runner) writeFiles(ctx context.Context, q *queue.Client, p batchfile.Parsed, results map[string]*lifecycle.Result, sum *Summary) error {
	for _, res := range results {
		if err := q.ResolveBody(ctx, res); err != nil {
			return err
		}
		sum.Retries += max(res.Attempts-1, 0)
	}
	for _, path := range []string{r.o.Output, r.o.Errors} {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return fmt.Errorf("demo: %w", err)
		}
	}
	out, err := os.Create(r.o.Output)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	defer out.Close()
	errs, err := os.Create(r.o.Errors)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	defer errs.Close()
	n, err := batchfile.WriteOutput(out, errs, p, results)
	if err != nil {
		return err
	}
	sum.OutputLines, sum.ErrorLines = n.Output, n.Errors
	if err := out.Close(); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	if err := errs.Close(); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	return nil
}
