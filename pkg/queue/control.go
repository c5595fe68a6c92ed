package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/salvo-run/salvo/pkg/lifecycle"
	"github.com/salvo-run/salvo/pkg/transport"
)

// Control event kinds. Defined in pkg/lifecycle so the engine needs no
// NATS client.
const (
	KindCancel    = lifecycle.ControlCancel
	KindSupersede = lifecycle.ControlSupersede
	KindHold      = lifecycle.ControlHold
)

// ControlEvent is the JSON body of a control message. Defined in
// pkg/lifecycle so the engine needs no NATS client.
type ControlEvent = lifecycle.ControlEvent

// BatchEvent is a batch lifecycle event, stored in the RESULTS stream on
// <p>.evt.batch.<batch>. Defined in pkg/lifecycle so the engine needs no
// NATS client.
type BatchEvent = lifecycle.BatchEvent

// PublishCancel announces the cancel of a whole batch (requestID "") on
// <p>.ctl.cancel.<batch>, or of one request on <p>.ctl.cancel.<batch>.<request>
// (<batch> is "_" for a batchless request). Core NATS: every connected
// worker gets it. The batch API's batch.cancel and request.cancel call it
// once Redis says canceled.
func (c *Client) PublishCancel(ctx context.Context, batchID, requestID string) error {
	if batchID == "" && requestID == "" {
		return fmt.Errorf("%w: cancel needs a batch id or a request id", ErrInvalidRequest)
	}
	return c.publishControl(ctx, c.subj.cancel(batchID, requestID), ControlEvent{Kind: KindCancel, BatchID: batchID, RequestID: requestID, At: time.Now().UTC()})
}

// PublishSupersede announces that requestID lost a race to the copy by on
// <p>.ctl.supersede.<request>. The event body carries kind, request_id, by
// and at; batch_id is absent (omitted): the publisher knows only the two
// request ids, and a supersede is matched by request id alone, so a
// receiver must not expect a batch id in it. The winner of a racing pair
// (escalation) calls it once Redis says the loser is superseded.
func (c *Client) PublishSupersede(ctx context.Context, requestID, by string) error {
	if requestID == "" {
		return fmt.Errorf("%w: supersede needs a request id", ErrInvalidRequest)
	}
	return c.publishControl(ctx, c.subj.supersede(requestID), ControlEvent{Kind: KindSupersede, RequestID: requestID, By: by, At: time.Now().UTC()})
}

// PublishHold announces on <p>.ctl.hold that the upstream asked to hold
// the budget of model (a 429 or 503 with Retry-After) once the hold is in
// Redis: a worker that has not used that budget's store yet starts asking
// it before each call, so one 429 slows every worker at once. The event
// carries no time: the store's hold decides how long.
func (c *Client) PublishHold(ctx context.Context, budget, model string) error {
	if budget == "" || model == "" {
		return fmt.Errorf("%w: hold needs a budget and a model", ErrInvalidRequest)
	}
	return c.publishControl(ctx, c.subj.hold(), ControlEvent{Kind: KindHold, Budget: budget, Model: model, At: time.Now().UTC()})
}

func (c *Client) publishControl(ctx context.Context, subj string, ev ControlEvent) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	data, err := json.Marshal(ev)
	if err != nil {
		return fmt.Errorf("queue: encode control event: %w", err)
	}
	if err := c.nc.Publish(subj, data); err != nil {
		return fmt.Errorf("queue: publish %s: %w", subj, err)
	}
	// Flush so the event is on the wire when we return: an abort is only
	// fast if the event is not left in the client's write buffer.
	if err := c.nc.FlushWithContext(ctx); err != nil {
		return fmt.Errorf("queue: publish %s: flush: %w", subj, err)
	}
	return nil
}

// SubscribeControl calls fn for every control event, on this instance: a
// plain (not queue-group) subscription, so every worker gets every event.
// An event whose body does not decode, or whose kind is not the one its
// subject names, is logged and skipped.
// fn runs on one goroutine in arrival order and should not block. stop
// unsubscribes and waits until fn has returned for the last time; it is
// safe to call twice.
func (c *Client) SubscribeControl(fn func(ControlEvent)) (stop func() error, err error) {
	var wg sync.WaitGroup
	var mu sync.Mutex
	stopped := false
	sub, err := c.nc.Subscribe(c.subj.allControl(), func(m *nats.Msg) {
		mu.Lock()
		if stopped {
			mu.Unlock()
			return
		}
		wg.Add(1)
		mu.Unlock()
		defer wg.Done()
		if ev, err := c.decodeControl(m); err != nil {
			c.log.Warn().Err(err).Str("subject", m.Subject).Msg("undecodable control event skipped")
		} else {
			fn(ev)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("queue: subscribe control: %w", err)
	}
	// Pending limits: control traffic is small, but a burst of per-request
	// cancels must not be dropped as a slow consumer.
	_ = sub.SetPendingLimits(1<<20, 256<<20)
	if err := c.nc.Flush(); err != nil { // the subscription is registered when this returns
		_ = sub.Unsubscribe()
		return nil, fmt.Errorf("queue: subscribe control: %w", err)
	}
	var once sync.Once
	return func() error {
		var uerr error
		once.Do(func() {
			uerr = sub.Unsubscribe()
			mu.Lock()
			stopped = true
			mu.Unlock()
			wg.Wait()
		})
		return uerr
	}, nil
}

func (c *Client) decodeControl(m *nats.Msg) (ControlEvent, error) {
	var ev ControlEvent
	subj, err := c.subj.parseControl(m.Subject)
	if err != nil {
		return ev, err
	}
	if err := json.Unmarshal(m.Data, &ev); err != nil {
		return ev, fmt.Errorf("queue: decode control event: %w", err)
	}
	if ev.Kind != subj.kind {
		return ev, fmt.Errorf("queue: control event of kind %q on a %s subject", ev.Kind, subj.kind)
	}
	return ev, nil
}

// PublishBatchEvent stores ev on <p>.evt.batch.<batch> in the RESULTS
// stream, deduplicated by batch id and type inside the duplicate window.
func (c *Client) PublishBatchEvent(ctx context.Context, ev BatchEvent) error {
	if !ev.Type.Valid() {
		return fmt.Errorf("%w: batch event type %q is not created or a terminal batch status", ErrInvalidRequest, ev.Type)
	}
	if ev.Batch.ID == "" {
		return fmt.Errorf("%w: batch event without a batch id", ErrInvalidRequest)
	}
	if ev.At.IsZero() {
		ev.At = time.Now().UTC()
	}
	data, err := json.Marshal(ev)
	if err != nil {
		return fmt.Errorf("queue: encode batch event: %w", err)
	}
	msg := nats.NewMsg(c.subj.batchEvent(ev.Batch.ID))
	msg.Data = data
	msg.Header.Set(jetstream.MsgIDHeader, ev.Batch.ID+":"+string(ev.Type))
	if _, err := c.js.PublishMsg(ctx, msg); err != nil {
		return fmt.Errorf("queue: publish batch event %s %s: %w", ev.Batch.ID, ev.Type, err)
	}
	return nil
}

// BatchEventSubject is the subject of a batch's lifecycle events. No
// production caller: tests read the events stored on it.
func (c *Client) BatchEventSubject(batchID string) string {
	return c.subj.batchEvent(batchID)
}

// PurgeBatch removes the queued request messages of the batch (all
// models: <p>.req.*.<batch>) whose stream sequence is below before (every
// one when before is 0) from the REQUESTS stream and returns how many were
// removed. Messages being handled right now are removed too; their late
// acks are harmless. Redis must already say the batch is over (truth
// first): the worker's EndQueued publishes the result of every message it
// purges first.
func (c *Client) PurgeBatch(ctx context.Context, batchID string, before uint64) (uint64, error) {
	if batchID == "" {
		return 0, fmt.Errorf("%w: purge needs a batch id", ErrInvalidRequest)
	}
	req := map[string]any{"filter": c.subj.batchRequests(batchID)}
	if before > 0 {
		req["seq"] = before // the server purges below it
	}
	body, err := json.Marshal(req)
	if err != nil {
		return 0, err
	}
	// The raw API: jetstream.Stream.Purge does not return the count.
	reply, err := c.nc.RequestWithContext(ctx, streamPurgeAPI+c.names.requests, body)
	if err != nil {
		return 0, fmt.Errorf("queue: purge batch %s: %w", batchID, err)
	}
	var resp struct {
		Success bool   `json:"success"`
		Purged  uint64 `json:"purged"`
		Error   *struct {
			Code        int    `json:"code"`
			Description string `json:"description"`
		} `json:"error"`
	}
	if err := json.Unmarshal(reply.Data, &resp); err != nil {
		return 0, fmt.Errorf("queue: purge batch %s: decode reply: %w", batchID, err)
	}
	if resp.Error != nil || !resp.Success {
		desc := "unsuccessful"
		if resp.Error != nil {
			desc = resp.Error.Description
		}
		return 0, fmt.Errorf("queue: purge batch %s: %s", batchID, desc)
	}
	return resp.Purged, nil
}

// Queued is one queued request message found by ScanBatch: its stream
// sequence and the request, or Err when the message is not a valid request.
type Queued = transport.Queued

// ScanBatch calls fn for each request message of the batch still in the
// REQUESTS stream, in stream order, reading them one by one without a
// consumer (the stream's get API); fn returns false to stop. It returns the
// last sequence it read (0 when there was none).
func (c *Client) ScanBatch(ctx context.Context, batchID string, fn func(Queued) bool) (uint64, error) {
	if batchID == "" {
		return 0, fmt.Errorf("%w: scan needs a batch id", ErrInvalidRequest)
	}
	s, err := c.requestStream(ctx)
	if err != nil {
		return 0, err
	}
	filter := c.subj.batchRequests(batchID)
	var last uint64
	for seq := uint64(1); ; seq = last + 1 {
		m, err := s.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(filter))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return last, nil
		}
		if err != nil {
			return last, fmt.Errorf("queue: scan batch %s after %d: %w", batchID, last, err)
		}
		last = m.Sequence
		q := Queued{Seq: m.Sequence, Subject: m.Subject}
		q.Request, q.Err = c.decodeRequest(m.Subject, m.Data)
		if !fn(q) {
			return last, nil
		}
	}
}

// MessageExists reports whether the REQUESTS stream still holds the
// message at seq.
func (c *Client) MessageExists(ctx context.Context, seq uint64) (bool, error) {
	s, err := c.requestStream(ctx)
	if err != nil {
		return false, err
	}
	_, err = s.GetMsg(ctx, seq)
	switch {
	case errors.Is(err, jetstream.ErrMsgNotFound):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("queue: look up message %d: %w", seq, err)
	}
	return true, nil
}

// RequestAt reads the request message stored at seq in the REQUESTS stream
// (the sweep starts a racing copy from it); the error wraps
// jetstream.ErrMsgNotFound when the message is gone.
func (c *Client) RequestAt(ctx context.Context, seq uint64) (*lifecycle.Request, error) {
	s, err := c.requestStream(ctx)
	if err != nil {
		return nil, err
	}
	m, err := s.GetMsg(ctx, seq)
	if err != nil {
		return nil, fmt.Errorf("queue: read message %d: %w", seq, err)
	}
	return c.decodeRequest(m.Subject, m.Data)
}

// requestStream looks up the REQUESTS stream once and keeps it.
func (c *Client) requestStream(ctx context.Context) (jetstream.Stream, error) {
	c.reqStreamMu.Lock()
	defer c.reqStreamMu.Unlock()
	if c.reqStream != nil {
		return c.reqStream, nil
	}
	s, err := c.js.Stream(ctx, c.names.requests)
	if err != nil {
		return nil, fmt.Errorf("queue: look up stream %s: %w", c.names.requests, err)
	}
	c.reqStream = s
	return s, nil
}

// DeleteRequest removes the message at seq from the REQUESTS stream; a
// message already gone is not an error.
func (c *Client) DeleteRequest(ctx context.Context, seq uint64) error {
	s, err := c.requestStream(ctx)
	if err != nil {
		return err
	}
	if err := s.DeleteMsg(ctx, seq); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
		return fmt.Errorf("queue: delete message %d: %w", seq, err)
	}
	return nil
}
