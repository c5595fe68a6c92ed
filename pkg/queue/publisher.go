package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/propagation"

	"github.com/salvo-run/salvo/pkg/lifecycle"
)

// publishAttempts is how many times one request is sent before its publish
// counts as failed. Resending is safe: the stream drops a copy with the same
// Nats-Msg-Id (MsgID) inside the duplicate window.
const publishAttempts = 3

// Publisher publishes requests asynchronously with a bounded window of
// un-acknowledged messages. Publish blocks while the window is full, so a
// fast producer is slowed to the stream's pace instead of buffering without
// bound; every publish either gets its ack or is reported by Flush. A
// Publisher is safe for concurrent use.
type Publisher struct {
	c      *Client
	window *Slots

	mu     sync.Mutex
	failed map[string]error
}

// NewPublisher returns a publisher with a window of Config.PublishWindow.
func (c *Client) NewPublisher() *Publisher {
	return &Publisher{c: c, window: NewSlots(c.cfg.PublishWindow), failed: map[string]error{}}
}

// Publish validates req and sends it without waiting for the stream's ack.
// The first request of a model (and one every ModelIdleTimeout / 2 after)
// is preceded by the model's announcement (announce.go).
// It blocks while the window is full or the client reports too many
// stalled publishes. An error here means req was not sent; a failure after
// sending is reported by Flush.
func (p *Publisher) Publish(ctx context.Context, req *lifecycle.Request) error {
	msg, err := p.c.requestMsg(ctx, req)
	if err != nil {
		return err
	}
	if err := p.window.Acquire(ctx); err != nil {
		return fmt.Errorf("queue: publish %s: %w", req.ID, err)
	}
	p.c.announceFor(req)
	fut, err := p.c.publishAsync(ctx, msg)
	if err != nil {
		p.window.Release(1)
		return fmt.Errorf("queue: publish %s: %w", req.ID, err)
	}
	go p.await(ctx, req.ID, msg, fut)
	return nil
}

// await waits for one ack, resending on a timeout or a missing stream
// responder. The goroutines are bounded by the window and each ends within
// publishAttempts × PublishTimeout.
func (p *Publisher) await(ctx context.Context, id string, msg *nats.Msg, fut jetstream.PubAckFuture) {
	defer p.window.Release(1)
	ctx = context.WithoutCancel(ctx) // an accepted publish is seen through even if the caller gives up
	for attempt := 1; ; attempt++ {
		var err error
		select {
		case <-fut.Ok():
			return
		case err = <-fut.Err():
		}
		if attempt >= publishAttempts || !retriablePublishErr(err) {
			p.fail(id, p.c.fullErr(err))
			return
		}
		p.c.log.Warn().Err(err).Str("request_id", id).Int("attempt", attempt).Msg("publish not acknowledged, resending")
		// A fresh message: the old one is owned by the failed future.
		resend := &nats.Msg{Subject: msg.Subject, Header: msg.Header, Data: msg.Data}
		if fut, err = p.c.publishAsync(ctx, resend); err != nil {
			p.fail(id, err)
			return
		}
	}
}

func (p *Publisher) fail(id string, err error) {
	p.c.log.Error().Err(err).Str("request_id", id).Msg("request publish failed")
	p.mu.Lock()
	p.failed[id] = err
	p.mu.Unlock()
}

// Flush waits until every publish so far is acknowledged or failed. It
// returns a *PublishError (errors.Is ErrPublish) naming the request ids
// that failed since the previous Flush; errors.Is(err, ErrStreamFull) when
// REQUESTS refused some of them at its limit.
func (p *Publisher) Flush(ctx context.Context) error {
	for {
		ch := p.window.Changed()
		if p.window.InUse() == 0 {
			break
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("queue: flush: %d publish(es) still unacknowledged: %w", p.window.InUse(), context.Cause(ctx))
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.failed) == 0 {
		return nil
	}
	err := &PublishError{Failed: p.failed}
	p.failed = map[string]error{}
	return err
}

// PublishRequest validates req and publishes it, waiting for the stream's
// acknowledgement. A duplicate inside the window is not an error. No
// production caller: the producer uses a Publisher; tests and benchmarks
// submit single requests with it.
func (c *Client) PublishRequest(ctx context.Context, req *lifecycle.Request) error {
	msg, err := c.requestMsg(ctx, req)
	if err != nil {
		return err
	}
	c.announceFor(req)
	if _, err := c.js.PublishMsg(ctx, msg); err != nil {
		return fmt.Errorf("queue: publish %s: %w", req.ID, c.fullErr(err))
	}
	return nil
}

// requestMsg validates req and builds its message: subject from model and
// batch, Nats-Msg-Id = MsgID(batch, id), W3C trace context from ctx.
func (c *Client) requestMsg(ctx context.Context, req *lifecycle.Request) (*nats.Msg, error) {
	if req == nil {
		return nil, fmt.Errorf("%w: nil request", ErrInvalidRequest)
	}
	if err := req.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrInvalidRequest, req.ID, err)
	}
	subj, err := c.subj.request(req.Model, req.BatchID)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrInvalidRequest, req.ID, err)
	}
	data, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("queue: encode request %s: %w", req.ID, err)
	}
	msg := nats.NewMsg(subj)
	msg.Data = data
	msg.Header.Set(jetstream.MsgIDHeader, MsgID(req.BatchID, req.ID))
	propagation.TraceContext{}.Inject(ctx, headerCarrier(msg.Header))
	return msg, nil
}

// Back-off bounds of a publish waiting for stalled publishes to clear.
const (
	stallMin = 5 * time.Millisecond
	stallMax = 500 * time.Millisecond
)

// publishAsync sends msg, backing off while the connection reports too many
// stalled publishes (several publishers share its window); it never drops.
// It gives up only when ctx ends, with ctx's cause.
func (c *Client) publishAsync(ctx context.Context, msg *nats.Msg) (jetstream.PubAckFuture, error) {
	fut, err := backoff.RetryWithData(func() (jetstream.PubAckFuture, error) {
		fut, err := c.js.PublishMsgAsync(msg)
		if err != nil && !errors.Is(err, jetstream.ErrTooManyStalledMsgs) {
			return nil, backoff.Permanent(err)
		}
		return fut, err
	}, backoff.WithContext(newBackOff(stallMin, stallMax), ctx))
	if err != nil && ctx.Err() != nil {
		return nil, context.Cause(ctx)
	}
	return fut, err
}

// jsStreamStoreFailed is the JetStream error code of a message the stream
// could not store; its description says why.
const jsStreamStoreFailed jetstream.ErrorCode = 10077

// fullErr turns the server's refusal of a request publish at a limit of
// REQUESTS (discard new: "maximum messages exceeded", "maximum bytes
// exceeded") into a *StreamFullError naming the limit; other errors are
// returned as they are.
func (c *Client) fullErr(err error) error {
	var api *jetstream.APIError
	if !errors.As(err, &api) || api.ErrorCode != jsStreamStoreFailed {
		return err
	}
	full := &StreamFullError{Stream: c.names.requests, Err: err}
	switch api.Description {
	case "maximum messages exceeded":
		full.Limit, full.Max, full.Key = "max_msgs", c.cfg.RequestsMaxMsgs, "requests_max_msgs"
	case "maximum bytes exceeded":
		full.Limit, full.Max, full.Key = "max_bytes", c.cfg.RequestsMaxBytes, "requests_max_bytes"
	default:
		return err
	}
	return full
}

func retriablePublishErr(err error) bool {
	return errors.Is(err, jetstream.ErrAsyncPublishTimeout) || errors.Is(err, nats.ErrNoResponders) ||
		errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, nats.ErrConnectionClosed) || errors.Is(err, nats.ErrDisconnected)
}

// headerCarrier adapts nats.Header to the OTel propagators without
// canonicalising keys: W3C names stay lower-case on the wire.
type headerCarrier nats.Header

func (h headerCarrier) Get(key string) string {
	if v := h[key]; len(v) > 0 {
		return v[0]
	}
	return ""
}

func (h headerCarrier) Set(key, value string) { h[key] = []string{value} }

func (h headerCarrier) Keys() []string {
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	return keys
}
