package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/salvo-run/salvo/pkg/lifecycle"
)

func (a *app) cancelCmd() *cobra.Command {
	var requestID, batchID string
	cmd := &cobra.Command{
		Use:   "cancel BATCH | cancel --request ID --batch BATCH",
		Short: "Cancel a batch, or one request of it",
		Long: `cancel BATCH cancels a batch (batch.cancel): its pending requests end
canceled at once, requests in flight are aborted, and the batch turns
cancelled once every result is out (it shows cancelling until then). A
batch that is already final is left as it is.

cancel --request ID --batch BATCH cancels one request (request.cancel);
leave --batch out for a request published without a batch. A request that
already ended is left as it is.

It prints the batch's or the request's status after the cancel (--json: the
object). The exit code is 0 when the API accepted the cancel.`,
		Example: `  producer cancel nightly-1
  producer cancel --request nightly-1-42 --batch nightly-1
  producer cancel nightly-1 && producer watch nightly-1`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				if batchID != "" {
					return usagef("give the batch either as an argument or with --batch, not both")
				}
				batchID = args[0]
			}
			if requestID == "" && batchID == "" {
				return usagef("missing BATCH (or --request ID)")
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			ctx, cancel := a.call(cmd.Context())
			defer cancel()
			if requestID != "" {
				r, err := c.CancelRequest(ctx, batchID, requestID)
				if err != nil {
					return err
				}
				if a.jsonOut {
					return a.printJSON(r)
				}
				_, err = fmt.Fprintf(a.io.out, "request %s: %s\n", r.ID, r.State)
				return err
			}
			b, err := c.CancelBatch(ctx, batchID)
			if err != nil {
				return err
			}
			if a.jsonOut {
				return a.printJSON(b)
			}
			fmt.Fprintf(a.io.out, "batch %s: %s\n", b.ID, b.Status)
			if !lifecycle.BatchStatus(b.Status).Terminal() {
				fmt.Fprintf(a.io.err, "it turns cancelled once every result is out: producer watch %s\n", b.ID)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&requestID, "request", "", "cancel this request instead of the whole batch")
	f.StringVar(&batchID, "batch", "", "the batch of --request (or the batch to cancel)")
	return cmd
}
