package queue

import (
	"context"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/salvo-run/salvo/pkg/lifecycle"
)

// ServerAtLeast exposes the version check to the external tests.
var ServerAtLeast = serverAtLeast

// OrphanGrace exposes how long the orphan sweep waits before deleting.
const OrphanGrace = orphanGrace

// ModelConsumerName is the durable consumer shared by all workers for model.
func (c *Client) ModelConsumerName(model string) (string, error) {
	tok, err := lifecycle.EncodeToken(model)
	if err != nil {
		return "", err
	}
	return consumerName(tok), nil
}

// EnsureModelConsumer creates the model's durable consumer as its fetch
// loop does, so a test can drive it by hand.
func (c *Client) EnsureModelConsumer(ctx context.Context, model string) (jetstream.Consumer, error) {
	tok, err := lifecycle.EncodeToken(model)
	if err != nil {
		return nil, err
	}
	return c.ensureModelConsumer(ctx, model, tok)
}
