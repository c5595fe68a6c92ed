package main

import (
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/salvo-run/salvo/pkg/api"
	"github.com/salvo-run/salvo/pkg/lifecycle"
)

// Page sizes of batch.list.
const (
	listLimitDefault = 20
	listLimitMax     = 100
)

// batchStatuses are the values of --status.
var batchStatuses = []string{
	string(lifecycle.BatchValidating), string(lifecycle.BatchInProgress), string(lifecycle.BatchFinalizing),
	string(lifecycle.BatchCancelling), string(lifecycle.BatchCompleted), string(lifecycle.BatchFailed),
	string(lifecycle.BatchExpired), string(lifecycle.BatchCancelled),
}

func (a *app) listCmd() *cobra.Command {
	var (
		status string
		meta   []string
		limit  int
		after  string
	)
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List batches, newest first",
		Long: `list prints one page of batches, newest first (batch.list): id, status,
requests ended of total, completed, failed, and creation time.

--status keeps one status, --metadata keeps batches whose metadata holds
every given pair. When there are more, the command for the next page is
printed on stderr (--after the last id). --json prints the list object
(data, first_id, last_id, has_more).`,
		Example: `  producer list
  producer list --status in_progress --metadata team=search
  producer list --limit 100 --after nightly-7
  producer list --json | jq -r '.data[].id'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			p := api.ListParams{After: after, Status: status}
			if status != "" && !lifecycle.BatchStatus(status).Valid() {
				return usagef("--status %q: want one of %s", status, strings.Join(batchStatuses, ", "))
			}
			if limit < 1 || limit > listLimitMax {
				return usagef("--limit %d: want 1 to %d", limit, listLimitMax)
			}
			p.Limit = &limit
			m, err := parseMetadata(meta)
			if err != nil {
				return err
			}
			p.Metadata = m
			c, err := a.client()
			if err != nil {
				return err
			}
			ctx, cancel := a.call(cmd.Context())
			defer cancel()
			l, err := c.ListBatches(ctx, p)
			if err != nil {
				return err
			}
			if a.jsonOut {
				return a.printJSON(l)
			}
			if err := writeList(a, l); err != nil {
				return err
			}
			if l.HasMore && l.LastID != nil {
				fmt.Fprintf(a.io.err, "more: %s --after %s\n", cmd.CommandPath(), *l.LastID)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&status, "status", "", "only batches in this status ("+strings.Join(batchStatuses, ", ")+")")
	f.StringArrayVar(&meta, "metadata", nil, "only batches whose metadata has `key=value` (repeatable, all must match)")
	f.IntVar(&limit, "limit", listLimitDefault, fmt.Sprintf("page size, 1 to %d", listLimitMax))
	f.StringVar(&after, "after", "", "start after this batch id (the last id of the previous page)")
	_ = cmd.RegisterFlagCompletionFunc("status", cobra.FixedCompletions(batchStatuses, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

func writeList(a *app, l api.BatchList) error {
	if len(l.Data) == 0 {
		_, err := fmt.Fprintln(a.io.err, "no batches")
		return err
	}
	tw := tabwriter.NewWriter(a.io.out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATUS\tENDED\tCOMPLETED\tFAILED\tCREATED")
	for _, b := range l.Data {
		created := "-"
		if b.CreatedAt != nil {
			created = formatUnix(*b.CreatedAt)
		}
		c := b.Salvo.Counts
		fmt.Fprintf(tw, "%s\t%s\t%d/%d\t%d\t%d\t%s\n", b.ID, b.Status, c.Terminal(), c.Total,
			b.RequestCounts.Completed, b.RequestCounts.Failed, created)
	}
	return tw.Flush()
}

// parseMetadata reads repeated key=value flags.
func parseMetadata(pairs []string) (map[string]string, error) {
	if len(pairs) == 0 {
		return nil, nil
	}
	m := make(map[string]string, len(pairs))
	for _, p := range pairs {
		k, v, ok := strings.Cut(p, "=")
		if !ok || k == "" {
			return nil, usagef("--metadata %q: want key=value", p)
		}
		if _, dup := m[k]; dup {
			return nil, usagef("--metadata: key %q given twice", k)
		}
		m[k] = v
	}
	return m, nil
}
