package api_test

import (
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/salvo-run/salvo/pkg/api"
	"github.com/salvo-run/salvo/pkg/lifecycle"
)

// A stored batch as batch.get shows it: OpenAI's counters, unix seconds,
// null for what has not happened yet.
func ExampleNewBatchObject() {
	created := time.Unix(1_700_000_000, 0)
	b := lifecycle.Batch{
		ID: "nightly-1", CompletionWindow: "1h", Status: lifecycle.BatchInProgress, Sealed: true,
		Counts:    lifecycle.Counts{Total: 4, Pending: 1, Completed: 2, Expired: 1},
		CreatedAt: created, InProgressAt: created.Add(2 * time.Second), ExpiresAt: created.Add(time.Hour),
	}
	o := api.NewBatchObject(b)
	out, _ := json.Marshal(struct {
		Status        string            `json:"status"`
		RequestCounts api.RequestCounts `json:"request_counts"`
		InProgressAt  *int64            `json:"in_progress_at"`
		CompletedAt   *int64            `json:"completed_at"`
	}{o.Status, o.RequestCounts, o.InProgressAt, o.CompletedAt})
	_, _ = os.Stdout.Write(append(out, '\n'))
	// Output:
	// {"status":"in_progress","request_counts":{"total":4,"completed":2,"failed":1},"in_progress_at":1700000002,"completed_at":null}
}

// The subjects a deployment with the default prefix answers on.
func ExampleSubject() {
	for _, ep := range api.Endpoints {
		_, _ = fmt.Fprintln(os.Stdout, api.Subject(lifecycle.PrefixDefault, ep))
	}
	// Output:
	// salvo.api.batch.create
	// salvo.api.batch.seal
	// salvo.api.batch.get
	// salvo.api.batch.cancel
	// salvo.api.batch.list
	// salvo.api.request.get
	// salvo.api.request.cancel
}
