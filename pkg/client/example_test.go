package client_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/salvo-run/salvo/pkg/api"
	"github.com/salvo-run/salvo/pkg/client"
)

// Create a batch, read it back and tell the three kinds of failure apart:
// nothing answers, the API refused, or the call itself failed. It needs a
// running worker, so it is compiled, not run.
func Example() {
	nc, err := nats.Connect(nats.DefaultURL)
	if err != nil {
		fmt.Println("connect:", err)
		return
	}
	defer nc.Close()
	c := client.New(nc, "") // the default prefix, "salvo"

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b, err := c.CreateBatch(ctx, api.CreateParams{
		ID:               "nightly-1",
		CompletionWindow: "24h",
		Endpoint:         "/v1/chat/completions",
		Metadata:         map[string]string{"owner": "reports"},
		Total:            1000,
	})
	var apiErr *client.Error
	switch {
	case errors.Is(err, client.ErrNoService):
		fmt.Println("no worker answers:", err) // names the subject
		return
	case errors.As(err, &apiErr):
		fmt.Println("refused:", apiErr.Code, apiErr.Message) // e.g. conflict: completion_window: …
		return
	case err != nil:
		fmt.Println("create:", err)
		return
	}
	fmt.Println(b.ID, b.Status, b.RequestCounts.Total)

	b, err = c.Batch(ctx, "nightly-1")
	if err != nil {
		fmt.Println("get:", err)
		return
	}
	fmt.Println(b.Status)
}
