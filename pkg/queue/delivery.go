package queue

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/propagation"

	"github.com/salvo-run/salvo/pkg/lifecycle"
	"github.com/salvo-run/salvo/pkg/transport"
)

var _ transport.Delivery = (*Delivery)(nil)

// Delivery is one delivery of a request message to this worker. The
// handler must finish it with Ack, Nak or Term, or deliberately leave it
// (a lost lease) so JetStream redelivers it after AckWait.
//
// NumDelivered and StreamSeq identify the delivery: use them to fence
// writes, because JetStream accepts an ack sent after AckWait and that ack
// can remove the redelivered copy another worker is running. *Delivery implements transport.Delivery.
type Delivery struct {
	msg  jetstream.Msg
	req  *lifecycle.Request
	meta *jetstream.MsgMetadata
}

// Request is the decoded, validated request.
func (d *Delivery) Request() *lifecycle.Request { return d.req }

// NumDelivered counts deliveries of this message, this one included (1 on
// the first delivery). Retries done with Nak count too.
func (d *Delivery) NumDelivered() uint64 { return d.meta.NumDelivered }

// StreamSeq is the message's sequence in the REQUESTS stream: recorded with
// the claim, so the sweep can tell whether a stranded request's message
// still exists.
func (d *Delivery) StreamSeq() uint64 { return d.meta.Sequence.Stream }

// Stored is when the stream stored the message (its first publication).
func (d *Delivery) Stored() time.Time { return d.meta.Timestamp }

// Subject is the subject the request was published on. No production
// caller: tests check routing with it.
func (d *Delivery) Subject() string { return d.msg.Subject() }

// TraceParent is the W3C traceparent header, "" when absent.
func (d *Delivery) TraceParent() string { return headerCarrier(d.msg.Headers()).Get(HeaderTraceParent) }

// TraceContext returns ctx carrying the producer's remote span context (W3C
// traceparent/tracestate) so the worker's spans join the producer's trace.
// Planned caller: the worker's spans (the observability issue); today only
// traceparent is forwarded upstream, through TraceParent.
func (d *Delivery) TraceContext(ctx context.Context) context.Context {
	return propagation.TraceContext{}.Extract(ctx, headerCarrier(d.msg.Headers()))
}

// InProgress tells the server the message is still being worked on, which
// restarts its AckWait timer. A message acked meanwhile (a heartbeat
// racing the handler's ack) needs nothing: nil.
func (d *Delivery) InProgress(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := d.msg.InProgress(); err != nil {
		if errors.Is(err, jetstream.ErrMsgAlreadyAckd) {
			return nil
		}
		return fmt.Errorf("queue: in-progress %s: %w", d.req.ID, err)
	}
	return nil
}

// Ack acknowledges the message without waiting for the server's
// confirmation. The worker acks only once a request's result is out and
// marked in Redis, so an ack lost on the way costs one redelivery after
// AckWait, which finds the request ended and published and acks again
// without publishing; waiting for every confirmation would cost a round
// trip and an inbox reply per request to learn nothing the store does not
// already say.
func (d *Delivery) Ack(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := d.msg.Ack(); err != nil {
		return fmt.Errorf("queue: ack %s: %w", d.req.ID, err)
	}
	return nil
}

// Nak asks for redelivery after delay (at once when delay <= 0). The
// message keeps its place in the consumer's pending set, counting against
// MaxAckPending, until it is redelivered.
func (d *Delivery) Nak(ctx context.Context, delay time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	var err error
	if delay > 0 {
		err = d.msg.NakWithDelay(delay)
	} else {
		err = d.msg.Nak()
	}
	if err != nil {
		return fmt.Errorf("queue: nak %s: %w", d.req.ID, err)
	}
	return nil
}

// Term removes the message for good; reason goes into the server's term
// advisory (never put secrets in it).
func (d *Delivery) Term(ctx context.Context, reason string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := d.msg.TermWithReason(reason); err != nil {
		return fmt.Errorf("queue: term %s: %w", d.req.ID, err)
	}
	return nil
}

// decodeDelivery decodes a delivered request message (decodeRequest).
func (c *Client) decodeDelivery(msg jetstream.Msg) (*Delivery, error) {
	meta, err := msg.Metadata()
	if err != nil {
		return nil, fmt.Errorf("queue: message metadata: %w", err)
	}
	req, err := c.decodeRequest(msg.Subject(), msg.Data())
	if err != nil {
		return nil, err
	}
	return &Delivery{msg: msg, req: req, meta: meta}, nil
}

// decodeRequest decodes and validates a request message, checks it was
// published where its body says and that its result subject is one a
// result may go to. A non-nil error is a *lifecycle.FieldError chain
// naming the bad field.
func (c *Client) decodeRequest(subject string, data []byte) (*lifecycle.Request, error) {
	req, err := lifecycle.DecodeRequest(data)
	if err != nil {
		return nil, err
	}
	if err := c.subj.checkRequest(subject, req); err != nil {
		return nil, err
	}
	if req.ResultSubject != "" {
		if err := c.subj.checkResult(req.ResultSubject); err != nil {
			return nil, invalidRequest("result_subject", "%v", err)
		}
	}
	return req, nil
}
