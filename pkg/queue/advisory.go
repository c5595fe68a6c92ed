package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/salvo-run/salvo/pkg/lifecycle"
)

// maxDeliveriesAdvisoryPrefix is the subject prefix of the server's
// MaxDeliver-exhausted advisories; the ADVISORIES stream captures
// <prefix>.<REQUESTS stream>.> so none is lost while no worker runs.
const maxDeliveriesAdvisoryPrefix = "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES"

// maxDeliveriesAdvisory is the server's advisory body (the fields we use).
type maxDeliveriesAdvisory struct {
	Type       string `json:"type"`
	Stream     string `json:"stream"`
	Consumer   string `json:"consumer"`
	StreamSeq  uint64 `json:"stream_seq"`
	Deliveries uint64 `json:"deliveries"`
}

// advisoryLoop consumes the ADVISORIES stream: for each request that
// exhausted MaxDeliver it calls OnMaxDeliveries and deletes the message,
// which a work-queue stream would otherwise keep forever.
func (co *Consumer) advisoryLoop() {
	defer co.loops.Done()
	ctx := co.fetchCtx
	c := co.c
	var cons jetstream.Consumer
	wait := retryMin
	for ctx.Err() == nil {
		if cons == nil {
			var err error
			if cons, err = c.js.CreateOrUpdateConsumer(ctx, c.names.advisories, c.advisoryConsumerConfig()); err != nil {
				co.advisoryFailed(ctx, err, &wait)
				continue
			}
		}
		fctx, cancel := context.WithTimeout(ctx, c.cfg.FetchExpiry)
		batch, err := cons.Fetch(16, jetstream.FetchContext(fctx), jetstream.FetchHeartbeat(c.cfg.FetchExpiry/4))
		if err == nil {
			for msg := range batch.Messages() {
				co.handleAdvisory(msg)
			}
			err = batch.Error()
			if errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil {
				err = nil
			}
		}
		cancel()
		if err != nil {
			cons = nil
			co.advisoryFailed(ctx, err, &wait)
			continue
		}
		co.advisory.ok()
		wait = retryMin
	}
}

func (co *Consumer) advisoryFailed(ctx context.Context, err error, wait *time.Duration) {
	if ctx.Err() != nil {
		return
	}
	co.advisory.failed(err)
	co.log.Warn().Err(err).Msg("max-deliveries advisory loop error; retrying")
	sleepCtx(ctx, *wait)
	*wait = min(*wait*2, retryMax)
}

// handleAdvisory settles one poison message. It runs in the advisory loop
// (one at a time per worker; the shared durable spreads them over workers).
// Handling is idempotent: the message may already be gone (a late ack, a
// purge, another worker that handled a redelivered advisory).
func (co *Consumer) handleAdvisory(msg jetstream.Msg) {
	ctx := co.handlerCtx
	var adv maxDeliveriesAdvisory
	if err := json.Unmarshal(msg.Data(), &adv); err != nil || adv.StreamSeq == 0 {
		co.log.Warn().Err(err).Str("subject", msg.Subject()).Msg("undecodable max-deliveries advisory dropped")
		_ = msg.Term()
		return
	}
	log := co.log.With().Uint64("stream_seq", adv.StreamSeq).Str("consumer", adv.Consumer).
		Uint64("deliveries", adv.Deliveries).Logger()
	if err := co.settlePoison(ctx, adv); err != nil {
		n := uint64(1)
		if meta, merr := msg.Metadata(); merr == nil {
			n = meta.NumDelivered
		}
		delay := min(time.Duration(n)*time.Second, time.Minute)
		log.Error().Err(err).Dur("retry_in", delay).Msg("poison message not settled; retrying")
		_ = msg.NakWithDelay(delay)
		return
	}
	if err := msg.DoubleAck(ctx); err != nil {
		log.Warn().Err(err).Msg("max-deliveries advisory ack failed; it will be handled again (idempotent)")
	}
}

// settlePoison records the poison request (OnMaxDeliveries, or a malformed
// result) and deletes its message.
func (co *Consumer) settlePoison(ctx context.Context, adv maxDeliveriesAdvisory) error {
	c := co.c
	if adv.Stream != c.names.requests {
		return nil
	}
	raw, err := co.stream.GetMsg(ctx, adv.StreamSeq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil // already gone
	}
	if err != nil {
		return fmt.Errorf("get message %d: %w", adv.StreamSeq, err)
	}
	req, err := c.decodeRaw(raw)
	if err != nil {
		if rerr := c.recordMalformed(ctx, raw.Subject, raw.Header, raw.Data, err, co.o.OnMalformed); rerr != nil {
			return rerr
		}
	} else {
		if err := co.o.OnMaxDeliveries(ctx, req, adv.Deliveries); err != nil {
			return fmt.Errorf("OnMaxDeliveries %s: %w", req.ID, err)
		}
		co.log.Warn().Str("request_id", req.ID).Str("batch_id", req.BatchID).Uint64("deliveries", adv.Deliveries).
			Msg("request exceeded max deliveries; recorded and removed")
	}
	if err := co.stream.DeleteMsg(ctx, adv.StreamSeq); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
		return fmt.Errorf("delete message %d: %w", adv.StreamSeq, err)
	}
	return nil
}

// decodeRaw decodes a stored request message with the same checks as a
// delivery.
func (c *Client) decodeRaw(raw *jetstream.RawStreamMsg) (*lifecycle.Request, error) {
	req, err := lifecycle.DecodeRequest(raw.Data)
	if err != nil {
		return nil, err
	}
	if want, _ := c.RequestSubject(req.Model, req.BatchID); raw.Subject != want {
		return nil, fmt.Errorf("lifecycle: invalid request: %w", &lifecycle.FieldError{
			Field: "model", Reason: fmt.Sprintf("belongs on subject %s, not %s", want, raw.Subject)})
	}
	return req, nil
}
