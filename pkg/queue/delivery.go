package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/propagation"

	"github.com/salvo-run/salvo/pkg/lifecycle"
)

// Delivery is one delivery of a request message to this worker. The
// handler must finish it with Ack, Nak or Term, or deliberately leave it
// (a lost lease) so JetStream redelivers it after AckWait.
//
// NumDelivered and StreamSeq identify the delivery: use them to fence
// writes, because JetStream accepts an ack sent after AckWait and that ack
// can remove the redelivered copy another worker is running.
type Delivery struct {
	msg     jetstream.Msg
	req     *lifecycle.Request
	meta    *jetstream.MsgMetadata
	ackWait time.Duration
}

// Request is the decoded, validated request.
func (d *Delivery) Request() *lifecycle.Request { return d.req }

// NumDelivered counts deliveries of this message, this one included (1 on
// the first delivery). Retries done with Nak count too.
func (d *Delivery) NumDelivered() uint64 { return d.meta.NumDelivered }

// StreamSeq is the message's sequence in the REQUESTS stream.
func (d *Delivery) StreamSeq() uint64 { return d.meta.Sequence.Stream }

// Subject is the subject the request was published on.
func (d *Delivery) Subject() string { return d.msg.Subject() }

// TraceParent is the W3C traceparent header, "" when absent.
func (d *Delivery) TraceParent() string { return headerCarrier(d.msg.Headers()).Get(HeaderTraceParent) }

// TraceContext returns ctx carrying the producer's remote span context (W3C
// traceparent/tracestate) so the worker's spans join the producer's trace.
func (d *Delivery) TraceContext(ctx context.Context) context.Context {
	return propagation.TraceContext{}.Extract(ctx, headerCarrier(d.msg.Headers()))
}

// InProgress tells the server the message is still being worked on, which
// restarts its AckWait timer.
func (d *Delivery) InProgress(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := d.msg.InProgress(); err != nil {
		return fmt.Errorf("queue: in-progress %s: %w", d.req.ID, err)
	}
	return nil
}

// KeepInProgress sends InProgress every interval (AckWait/3 when interval
// is zero) until stop is called or ctx ends. stop waits for the ticker
// goroutine to exit and is safe to call twice.
func (d *Delivery) KeepInProgress(ctx context.Context, interval time.Duration) (stop func()) {
	if interval <= 0 {
		interval = d.ackWait / 3
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				// A failure (disconnected, already acked) is retried at the next tick.
				_ = d.InProgress(ctx)
			}
		}
	}()
	return func() { cancel(); wg.Wait() }
}

// Ack acknowledges the message and waits for the server's confirmation
// (double ack): after a nil return the message is gone from the stream.
func (d *Delivery) Ack(ctx context.Context) error {
	if err := d.msg.DoubleAck(ctx); err != nil {
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

// decodeDelivery decodes and validates a request message and checks it was
// published where its body says. A non-nil error is a *lifecycle.FieldError
// chain naming the bad field.
func (c *Client) decodeDelivery(msg jetstream.Msg) (*Delivery, error) {
	meta, err := msg.Metadata()
	if err != nil {
		return nil, fmt.Errorf("queue: message metadata: %w", err)
	}
	req, err := lifecycle.DecodeRequest(msg.Data())
	if err != nil {
		return nil, err
	}
	want, _ := c.RequestSubject(req.Model, req.BatchID)
	if msg.Subject() != want {
		return nil, fmt.Errorf("lifecycle: invalid request: %w", &lifecycle.FieldError{
			Field:  "model",
			Reason: fmt.Sprintf("model %q and batch_id %q belong on subject %s, not %s", req.Model, req.BatchID, want, msg.Subject()),
		})
	}
	if req.ResultSubject != "" {
		if err := c.checkResultSubject(req.ResultSubject); err != nil {
			return nil, fmt.Errorf("lifecycle: invalid request: %w", &lifecycle.FieldError{
				Field: "result_subject", Reason: err.Error(),
			})
		}
	}
	return &Delivery{msg: msg, req: req, meta: meta, ackWait: c.cfg.AckWait}, nil
}

// salvage is what can be read from a message that is not a valid request.
type salvage struct {
	ID            string `json:"id"`
	BatchID       string `json:"batch_id"`
	CustomID      string `json:"custom_id"`
	Model         string `json:"model"`
	ResultSubject string `json:"result_subject"`
}

// salvageRequest reads the identifying fields of a malformed message: from
// the body when it is a JSON object, else the id from Nats-Msg-Id and the
// batch from the subject.
func (c *Client) salvageRequest(subject string, hdr map[string][]string, data []byte) salvage {
	var s salvage
	_ = json.Unmarshal(data, &s) // best effort: any field may be missing or mistyped
	if s.ID == "" {
		if v := hdr[jetstream.MsgIDHeader]; len(v) > 0 {
			s.ID = v[0]
		}
	}
	if s.BatchID == "" {
		// <p>.req.<model>.<batch>
		if toks := strings.Split(subject, "."); len(toks) == 4 && toks[3] != lifecycle.BatchlessToken {
			if b, err := lifecycle.DecodeToken(toks[3]); err == nil {
				s.BatchID = b
			}
		}
	}
	return s
}

// rejectMalformed records a malformed message as a failed result (when an
// id can be read) and terminates it. If the result cannot be published the
// message is nak'd so the record is not lost.
func (c *Client) rejectMalformed(ctx context.Context, msg jetstream.Msg, cause error, hook malformedHook) {
	reason := "malformed request message: " + cause.Error()
	if err := c.recordMalformed(ctx, msg.Subject(), msg.Headers(), msg.Data(), cause, hook); err != nil {
		c.log.Error().Err(err).Str("subject", msg.Subject()).Msg("malformed request message: result not published, retrying later")
		_ = msg.NakWithDelay(time.Second)
		return
	}
	_ = msg.TermWithReason(truncate(reason, 512))
}

// malformedHook is ConsumeOptions.OnMalformed.
type malformedHook = func(ctx context.Context, res *lifecycle.Result) (publish bool, err error)

// recordMalformed publishes a failed result (lifecycle.CodeMalformedMessage,
// the cause naming the bad field) for a message that is not a valid
// request, if an id can be read from it, and logs it; hook (if any) records
// the failure first. An error means the result was not published and the
// message must not be removed yet.
func (c *Client) recordMalformed(ctx context.Context, subject string, hdr map[string][]string, data []byte, cause error, hook malformedHook) error {
	s := c.salvageRequest(subject, hdr, data)
	log := c.log.With().Str("subject", subject).Str("request_id", s.ID).Str("batch_id", s.BatchID).Logger()
	if s.ID == "" || len(s.ID) > lifecycle.MaxIDLength {
		log.Error().Err(cause).Msg("malformed request message without a readable id: removed without a result")
		return nil
	}
	res := &lifecycle.Result{
		V: lifecycle.WireVersion, ID: s.ID, CustomID: s.CustomID, BatchID: s.BatchID, Model: s.Model,
		State: lifecycle.StateFailed,
		Error: &lifecycle.ResultError{Code: lifecycle.CodeMalformedMessage, Message: truncate("malformed request message: "+cause.Error(), 2048)},
	}
	if hook != nil {
		publish, err := hook(ctx, res)
		if err != nil {
			return fmt.Errorf("queue: record malformed %s: %w", s.ID, err)
		}
		if !publish {
			log.Warn().Err(cause).Msg("malformed request message for a request that already ended: removed")
			return nil
		}
	}
	if err := c.PublishResult(ctx, res, validResultSubject(c, s.ResultSubject)); err != nil {
		return err
	}
	log.Warn().Err(cause).Msg("malformed request message recorded as failed")
	return nil
}

func validResultSubject(c *Client, s string) string {
	if c.checkResultSubject(s) != nil {
		return ""
	}
	return s
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

var errEmptySubject = errors.New("empty subject")
