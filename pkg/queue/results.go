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
)

// payloadHeadroom is kept free under the server's max payload for headers.
const payloadHeadroom = 4 << 10

// resultRouteTTL is how long the "is this subject captured by a stream"
// answer for a result subject is cached.
const resultRouteTTL = time.Minute

// PublishResult stores res on <p>.res.<batch> with Nats-Msg-Id =
// MsgID(batch, id) (MsgID(batch, escalation_id) for a racing copy's line),
// so a repeat inside the duplicate window is dropped by
// the stream, and the same id in another batch is not. When the
// encoded result would exceed the server's max payload, the response body
// goes to the object store and the stored result carries Response.BodyRef
// instead (res itself is not modified); ResolveBody reverses that.
//
// When resultSubject is set the same bytes are also delivered there: with a
// JetStream publish (the same Nats-Msg-Id) if a stream captures the
// subject, else a core NATS publish, which only reaches subscribers
// connected at that moment. Subjects inside salvo's own request, control
// and event namespaces and "$..." system subjects are refused (delivered
// requests never carry one: the queue rejects them as malformed); the
// stored copy on <p>.res.<batch> is published first either way, so a bad
// extra subject never costs the result itself. The worker encodes first
// (to keep the line in its outbox) and calls PublishEncodedResult; tests
// publish results with this.
func (c *Client) PublishResult(ctx context.Context, res *lifecycle.Result, resultSubject string) error {
	return c.PublishEncodedResult(ctx, res, nil, resultSubject)
}

// PublishEncodedResult is PublishResult for a caller that already holds
// res encoded as JSON (the worker keeps that line in Redis): data is sent
// as is when it fits the max payload, saving a second encoding on the hot
// path; otherwise, or when data is nil, res is encoded here as
// PublishResult does.
func (c *Client) PublishEncodedResult(ctx context.Context, res *lifecycle.Result, data []byte, resultSubject string) error {
	if res == nil || res.ID == "" {
		return fmt.Errorf("%w: result without an id", ErrInvalidRequest)
	}
	if len(data) == 0 || len(data) > int(c.nc.MaxPayload())-payloadHeadroom {
		var err error
		if data, err = c.encodeResult(ctx, res); err != nil {
			return err
		}
	}
	msgID := MsgID(res.BatchID, res.ID)
	if res.EscalationID != "" {
		// a winning racing copy's line for its original: its own id, so
		// the stream does not drop it as a repeat of the original's line
		msgID = MsgID(res.BatchID, res.EscalationID)
	}
	msg := nats.NewMsg(c.subj.result(res.BatchID))
	msg.Data = data
	msg.Header.Set(jetstream.MsgIDHeader, msgID)
	if _, err := c.js.PublishMsg(ctx, msg); err != nil {
		return fmt.Errorf("queue: publish result %s: %w", res.ID, err)
	}
	if resultSubject == "" {
		return nil
	}
	if err := c.subj.checkResult(resultSubject); err != nil {
		return err
	}
	extra := nats.NewMsg(resultSubject)
	extra.Data = data
	extra.Header.Set(jetstream.MsgIDHeader, msgID)
	var err error
	if c.capturedByStream(ctx, resultSubject) {
		_, err = c.js.PublishMsg(ctx, extra)
	} else {
		err = c.nc.PublishMsg(extra)
	}
	if err != nil {
		return fmt.Errorf("queue: deliver result %s to %s: %w", res.ID, resultSubject, err)
	}
	return nil
}

// EncodeResult encodes res as PublishResult would store it: a response
// body that would push the line over the max payload goes to the object
// store first and the line carries its BodyRef. The worker keeps this line
// in Redis until it is published, so a large body never lives there.
func (c *Client) EncodeResult(ctx context.Context, res *lifecycle.Result) ([]byte, error) {
	return c.encodeResult(ctx, res)
}

func (c *Client) encodeResult(ctx context.Context, res *lifecycle.Result) ([]byte, error) {
	data, err := json.Marshal(res)
	if err != nil {
		return nil, fmt.Errorf("queue: encode result %s: %w", res.ID, err)
	}
	limit := int(c.nc.MaxPayload()) - payloadHeadroom
	if len(data) <= limit || res.Response == nil || len(res.Response.Body) == 0 {
		return data, nil
	}
	store, err := c.bodiesStore(ctx)
	if err != nil {
		return nil, err
	}
	name := bodyObjectName(res)
	if _, err := store.PutBytes(ctx, name, res.Response.Body); err != nil {
		return nil, fmt.Errorf("queue: store result body %s: %w", res.ID, err)
	}
	cp := *res
	resp := *res.Response
	resp.Body = nil
	resp.BodyRef = &lifecycle.BodyRef{Bucket: c.names.bodies, Object: name, Size: int64(len(res.Response.Body))}
	cp.Response = &resp
	if data, err = json.Marshal(&cp); err != nil {
		return nil, fmt.Errorf("queue: encode result %s: %w", res.ID, err)
	}
	if len(data) > limit {
		return nil, fmt.Errorf("queue: result %s is %d bytes without its body, over the %d byte limit", res.ID, len(data), limit)
	}
	return data, nil
}

func bodyObjectName(res *lifecycle.Result) string {
	return lifecycle.BatchToken(res.BatchID) + "/" + lifecycle.MustEncodeToken(res.ID)
}

// ResolveBody fills res.Response.Body from the object store when the result
// carries a BodyRef; otherwise it does nothing.
func (c *Client) ResolveBody(ctx context.Context, res *lifecycle.Result) error {
	if res == nil || res.Response == nil || res.Response.BodyRef == nil || len(res.Response.Body) > 0 {
		return nil
	}
	ref := res.Response.BodyRef
	store, err := c.js.ObjectStore(ctx, ref.Bucket)
	if err != nil {
		return fmt.Errorf("queue: resolve body of %s: object store %s: %w", res.ID, ref.Bucket, err)
	}
	body, err := store.GetBytes(ctx, ref.Object)
	if err != nil {
		return fmt.Errorf("queue: resolve body of %s: object %s: %w", res.ID, ref.Object, err)
	}
	res.Response.Body = body
	return nil
}

// ReplayResults calls fn for every stored result of the batch ("" for
// batchless requests), in stream order, each request id once — but for a
// completed line that replaces an earlier line of the same id
// (lifecycle.ReplacesLine: a racing copy overturned a published failure),
// which fn sees too and must keep instead — and returns
// when it has caught up with the stream. An error from fn stops the replay
// and is returned. internal/producer's WriteResults (the results files)
// and ResultStats (watch's retries and latency) read a batch with it.
func (c *Client) ReplayResults(ctx context.Context, batchID string, fn func(*lifecycle.Result) error) error {
	cons, err := c.js.OrderedConsumer(ctx, c.names.results, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{c.subj.result(batchID)},
	})
	if err != nil {
		return fmt.Errorf("queue: replay results of %q: %w", batchID, err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		return fmt.Errorf("queue: replay results of %q: %w", batchID, err)
	}
	if info.NumPending == 0 {
		return nil
	}
	seen := map[string]lifecycle.State{}
	// Pull exactly what is pending, so each pull completes as soon as its
	// last message arrives; NumPending of the last message says whether
	// more arrived meanwhile.
	for pending := info.NumPending; pending > 0; {
		batch, err := cons.Fetch(int(min(pending, 256)), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			return fmt.Errorf("queue: replay results of %q: %w", batchID, err)
		}
		got := 0
		for msg := range batch.Messages() {
			got++
			if res, ok := c.decodeResult(msg, seen); ok {
				if err := fn(res); err != nil {
					return err
				}
			}
			if meta, err := msg.Metadata(); err == nil {
				pending = meta.NumPending
			}
		}
		if err := batch.Error(); err != nil {
			return fmt.Errorf("queue: replay results of %q: %w", batchID, err)
		}
		if got == 0 {
			return fmt.Errorf("queue: replay results of %q: %d result(s) pending but none delivered", batchID, pending)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	return nil
}

// SubscribeResults calls fn for every stored result of the batch and then
// for each new one as it arrives, each request id once, from one goroutine.
// It survives reconnects (ordered consumer). stop ends the subscription and
// waits for fn to return; it is safe to call twice. Canceling ctx stops it
// too.
func (c *Client) SubscribeResults(ctx context.Context, batchID string, fn func(*lifecycle.Result)) (stop func(), err error) {
	cons, err := c.js.OrderedConsumer(ctx, c.names.results, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{c.subj.result(batchID)},
	})
	if err != nil {
		return nil, fmt.Errorf("queue: subscribe results of %q: %w", batchID, err)
	}
	seen := map[string]lifecycle.State{}
	cc, err := cons.Consume(func(msg jetstream.Msg) {
		if res, ok := c.decodeResult(msg, seen); ok {
			fn(res)
		}
	}, jetstream.PullMaxMessages(256))
	if err != nil {
		return nil, fmt.Errorf("queue: subscribe results of %q: %w", batchID, err)
	}
	unhook := context.AfterFunc(ctx, cc.Stop)
	var once sync.Once
	return func() {
		once.Do(func() {
			unhook()
			cc.Stop()
			<-cc.Closed()
		})
	}, nil
}

// decodeResult decodes a stored result, skipping undecodable messages and
// ids already in seen (a repeat published after the duplicate window).
func (c *Client) decodeResult(msg jetstream.Msg, seen map[string]lifecycle.State) (*lifecycle.Result, bool) {
	var res lifecycle.Result
	if err := json.Unmarshal(msg.Data(), &res); err != nil || res.ID == "" {
		c.log.Warn().Err(err).Str("subject", msg.Subject()).Msg("undecodable result message skipped")
		return nil, false
	}
	if prev, dup := seen[res.ID]; dup && !lifecycle.ReplacesLine(&lifecycle.Result{State: prev}, &res) {
		return nil, false
	}
	seen[res.ID] = res.State
	return &res, true
}

// capturedByStream reports (cached) whether a JetStream stream captures
// subject. On a lookup error it answers false: the core publish still
// reaches live subscribers.
func (c *Client) capturedByStream(ctx context.Context, subject string) bool {
	c.subjMu.Lock()
	r, ok := c.subjStream[subject]
	c.subjMu.Unlock()
	if ok && time.Since(r.checked) < resultRouteTTL {
		return r.jetstream
	}
	_, err := c.js.StreamNameBySubject(ctx, subject)
	r = subjectRoute{jetstream: err == nil, checked: time.Now()}
	if err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
		return false // not cached: ask again next time
	}
	c.subjMu.Lock()
	if len(c.subjStream) > 10000 {
		clear(c.subjStream) // bounded cache
	}
	c.subjStream[subject] = r
	c.subjMu.Unlock()
	return r.jetstream
}
