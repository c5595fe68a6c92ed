package main

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/salvo-run/salvo/internal/producer"
	"github.com/salvo-run/salvo/pkg/api"
)

func (a *app) statusCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "status BATCH",
		Short: "Show a batch: status, counts by state, results and times",
		Long: `status reads a batch through batch.get and prints its status, the counts
of its requests by state (salvo's exact counters and OpenAI's three), how
many results are published or missing, and the times it reached.

With --json it prints the batch object as the batch API returns it
(docs/PROTOCOL.md section 11.3). The exit code is 0 whatever the batch's
status; use watch to wait for the end.`,
		Example: `  producer status batch_0123456789abcdef01234567
  producer status nightly-1 --json | jq .request_counts`,
		Args: exactArgs("BATCH"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			ctx, cancel := a.call(cmd.Context())
			defer cancel()
			b, err := c.Batch(ctx, args[0])
			if err != nil {
				return err
			}
			if a.jsonOut {
				return a.printJSON(b)
			}
			return writeBatch(a.io.out, b)
		},
	}
}

// writeBatch prints b as a two-column table.
func writeBatch(w io.Writer, b api.BatchObject) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	c := b.Salvo.Counts
	row := func(k, format string, args ...any) { fmt.Fprintf(tw, "%s\t%s\n", k, fmt.Sprintf(format, args...)) }
	row("Batch", "%s", b.ID)
	row("Status", "%s", b.Status)
	row("Endpoint", "%s", orDash(b.Endpoint))
	row("Window", "%s", b.CompletionWindow)
	if len(b.Metadata) > 0 {
		row("Metadata", "%s", metadataString(b.Metadata))
	}
	if b.Salvo.Sealed {
		row("Requests", "%d of %d ended", c.Terminal(), c.Total)
	} else {
		row("Requests", "%d of %d ended (open batch: the total counts the requests seen so far)", c.Terminal(), c.Total)
	}
	row("", "%s", producer.EndedCounts(c))
	row("", "pending %d, in_progress %d", c.Pending, c.InProgress)
	row("OpenAI counts", "total %d, completed %d, failed %d",
		b.RequestCounts.Total, b.RequestCounts.Completed, b.RequestCounts.Failed)
	row("Results", "published %d, missing %d", b.Salvo.ResultsPublished, b.Salvo.ResultsMissing)
	for _, t := range []struct {
		name string
		at   *int64
	}{
		{"Created", b.CreatedAt}, {"In progress", b.InProgressAt}, {"Expires", b.ExpiresAt},
		{"Finalizing", b.FinalizingAt}, {"Cancelling", b.CancellingAt}, {"Completed", b.CompletedAt},
		{"Failed", b.FailedAt}, {"Expired", b.ExpiredAt}, {"Cancelled", b.CancelledAt},
	} {
		if t.at != nil {
			row(t.name, "%s", formatUnix(*t.at))
		}
	}
	return tw.Flush()
}

// formatUnix shows unix seconds as a local time.
func formatUnix(s int64) string {
	return time.Unix(s, 0).Local().Format("2006-01-02 15:04:05 MST")
}

func orDash(s *string) string {
	if s == nil || *s == "" {
		return "-"
	}
	return *s
}

// metadataString is k=v pairs, sorted by key.
func metadataString(m map[string]string) string {
	pairs := make([]string, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		pairs = append(pairs, k+"="+m[k])
	}
	return strings.Join(pairs, ", ")
}
