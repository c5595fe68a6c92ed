package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// maxDeliveriesAdvisory is the server's advisory body (the fields we use).
type maxDeliveriesAdvisory struct {
	Type       string `json:"type"`
	Stream     string `json:"stream"`
	Consumer   string `json:"consumer"`
	StreamSeq  uint64 `json:"stream_seq"`
	Deliveries uint64 `json:"deliveries"`
}

// advisoryLoop consumes the ADVISORIES stream: each request message that
// exhausted MaxDeliver is reported to OnPoison and deleted, which a
// work-queue stream would otherwise keep forever.
func (co *Consumer) advisoryLoop() {
	defer co.loops.Done()
	c := co.c
	l := pullLoop{
		health: co.advisory,
		log:    co.log.With().Str("part", "advisories").Logger(),
		ensure: func(ctx context.Context) (jetstream.Consumer, error) {
			return c.js.CreateOrUpdateConsumer(ctx, c.names.advisories, c.advisoryConsumerConfig())
		},
		pull: func(ctx context.Context, cons jetstream.Consumer) error {
			_, err := c.pullOnce(ctx, cons, 16, co.handleAdvisory)
			return err
		},
	}
	l.run(co.fetchCtx)
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

// settlePoison reports the advisory's request message to OnPoison (as
// exhausted, or as malformed when it is not a valid request) and deletes
// it.
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
	p := Poison{Kind: PoisonMaxDeliveries, Subject: raw.Subject}
	if p.Request, err = c.decodeRequest(raw.Subject, raw.Data); err != nil {
		p = c.malformed(raw.Subject, raw.Header, raw.Data, err)
	}
	p.Deliveries, p.StreamSeq = adv.Deliveries, raw.Sequence
	if err := co.reportPoison(ctx, p); err != nil {
		return err
	}
	if err := co.stream.DeleteMsg(ctx, adv.StreamSeq); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
		return fmt.Errorf("delete message %d: %w", adv.StreamSeq, err)
	}
	return nil
}
