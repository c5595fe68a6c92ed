package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/salvo-run/salvo/pkg/lifecycle"
	"github.com/salvo-run/salvo/pkg/transport"
)

// PoisonKind says why the queue gives up on a request message. Defined in
// pkg/transport so the engine needs no NATS client.
type PoisonKind = transport.PoisonKind

// Poison kinds.
const (
	PoisonMalformed     = transport.PoisonMalformed
	PoisonMaxDeliveries = transport.PoisonMaxDeliveries
	PoisonUnrouted      = transport.PoisonUnrouted
)

// Poison is a request message the queue gives up on. Defined in
// pkg/transport so the engine needs no NATS client.
type Poison = transport.Poison

// reportPoison hands p to OnPoison. The caller removes the message only
// after a nil return.
func (co *Consumer) reportPoison(ctx context.Context, p Poison) error {
	if err := co.o.OnPoison(ctx, p); err != nil {
		return fmt.Errorf("queue: %s message %d (request %q): %w", p.Kind, p.StreamSeq, p.Request.ID, err)
	}
	co.log.Debug().Str("kind", string(p.Kind)).Str("request_id", p.Request.ID).Uint64("stream_seq", p.StreamSeq).
		Msg("poison request message reported; removing it")
	return nil
}

// removeStored reports p, a message read from the stream by sequence (never
// delivered: a junk or unrouted subject), then deletes it. A message
// already gone is fine: another worker settled it.
func (co *Consumer) removeStored(ctx context.Context, p Poison) error {
	if err := co.reportPoison(ctx, p); err != nil {
		return err
	}
	if err := co.stream.DeleteMsg(ctx, p.StreamSeq); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
		return fmt.Errorf("queue: delete %s message %d: %w", p.Kind, p.StreamSeq, err)
	}
	return nil
}

// dropPoison is the OnPoison of a consumer given none: it logs the message,
// which is then removed with nothing recorded.
func (co *Consumer) dropPoison(_ context.Context, p Poison) error {
	co.log.Error().Err(p.Cause).Str("kind", string(p.Kind)).Str("request_id", p.Request.ID).
		Str("subject", p.Subject).Uint64("stream_seq", p.StreamSeq).Uint64("deliveries", p.Deliveries).
		Msg("poison request message removed with nothing recorded (no OnPoison)")
	return nil
}

// rejectMalformed reports a delivered message that is not a valid request
// and terminates it, or naks it for another try when the report fails.
func (co *Consumer) rejectMalformed(ctx context.Context, msg jetstream.Msg, cause error) {
	p := co.c.malformed(msg.Subject(), msg.Headers(), msg.Data(), cause)
	if meta, err := msg.Metadata(); err == nil {
		p.Deliveries, p.StreamSeq = meta.NumDelivered, meta.Sequence.Stream
	}
	if err := co.reportPoison(ctx, p); err != nil {
		co.log.Error().Err(err).Str("subject", msg.Subject()).Msg("malformed request message not recorded; retrying later")
		_ = msg.NakWithDelay(time.Second)
		return
	}
	_ = msg.TermWithReason(truncate("malformed request message: "+cause.Error(), 512))
}

// malformed is the Poison of a message that is not a valid request, with
// what can be read of it: the identifying fields of the body when it is a
// JSON object, else the id from Nats-Msg-Id and the model and batch from
// the subject.
func (c *Client) malformed(subject string, hdr nats.Header, data []byte, cause error) Poison {
	var s struct {
		ID            string `json:"id"`
		BatchID       string `json:"batch_id"`
		CustomID      string `json:"custom_id"`
		Model         string `json:"model"`
		ResultSubject string `json:"result_subject"`
	}
	_ = json.Unmarshal(data, &s)            // best effort: any field may be missing or mistyped
	from, _ := c.subj.parseRequest(subject) // whatever it could read
	if s.BatchID == "" {
		s.BatchID = from.batchID
	}
	if s.ID == "" {
		if v := hdr[jetstream.MsgIDHeader]; len(v) > 0 {
			s.ID = idFromMsgID(s.BatchID, v[0])
		}
	}
	if s.Model == "" {
		s.Model = from.model
	}
	if c.subj.checkResult(s.ResultSubject) != nil {
		s.ResultSubject = ""
	}
	return Poison{
		Kind:    PoisonMalformed,
		Request: &lifecycle.Request{ID: s.ID, BatchID: s.BatchID, CustomID: s.CustomID, Model: s.Model, ResultSubject: s.ResultSubject},
		Cause:   cause,
		Subject: subject,
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
