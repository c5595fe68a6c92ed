package queue

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
)

// Orphans are request messages that the stream still stores although
// their model consumer's ack floor has passed them, so the consumer will
// never deliver them again and nothing else removes them.
//
// How one arises: a work-queue ack is applied in two steps on the server,
// first to the consumer's state, then (a moment later, in the same
// goroutine) to the stream, which deletes the message. A server shutting
// down marks the stream closed in between; the second step is skipped while
// the consumer's state, ack included, is written to disk. After the
// restart a single server reconciles consumer and stream only for
// interest-retention streams (a clustered server also runs a periodic check
// every ~2 minutes); a work-queue stream keeps the message until MaxAge
// (days). The request itself was handled: its handler ran and acked.
//
// The other way a stored message falls below the ack floor is a message
// that exhausted MaxDeliver: the server drops it from the pending set and
// the ack floor moves on. Those belong to the advisory loop (OnPoison
// records the failure, then the message is deleted, then the advisory is
// acked), so the sweep leaves a model alone while the ADVISORIES stream
// holds an advisory of its consumer.
//
// The sweep deletes a candidate only after it has seen it in two sweeps at
// least orphanGrace apart: a normal ack deletes its message microseconds
// after moving the floor, and an advisory is stored milliseconds after the
// floor moves past a poison message.
const orphanGrace = 5 * time.Second

// maxOrphansPerModel bounds the messages one sweep examines per model.
const maxOrphansPerModel = 64

// orphanSweeper finds and deletes orphans of the models this consumer
// fetches. It runs in one goroutine.
type orphanSweeper struct {
	co       *Consumer
	log      zerolog.Logger
	adv      jetstream.Stream   // the ADVISORIES stream, looked up at first use
	suspects map[uint64]suspect // by stream sequence
}

// suspect is an orphan candidate and when a sweep first saw it.
type suspect struct {
	since   time.Time
	subject string
	id      string
}

func (co *Consumer) orphanLoop() {
	defer co.loops.Done()
	sw := &orphanSweeper{co: co, suspects: map[uint64]suspect{},
		log: co.log.With().Str("part", "orphan-sweep").Logger()}
	t := time.NewTicker(co.c.cfg.OrphanSweepInterval)
	defer t.Stop()
	for {
		select {
		case <-co.fetchCtx.Done():
			return
		case <-t.C:
		}
		if err := sw.sweep(co.fetchCtx, time.Now()); err != nil && co.fetchCtx.Err() == nil {
			sw.log.Warn().Err(err).Msg("orphan sweep failed; retrying at the next sweep")
		}
	}
}

// sweep examines every model this consumer fetches and deletes the
// candidates that outlived orphanGrace. A model whose check fails keeps
// its suspects for the next sweep; the others go on.
func (sw *orphanSweeper) sweep(ctx context.Context, now time.Time) error {
	next := map[uint64]suspect{}
	var errs []error
	for _, tok := range sw.co.modelTokens() {
		cands, err := sw.candidates(ctx, tok)
		if err != nil {
			errs = append(errs, err)
			sw.keep(next, tok)
			continue
		}
		if len(cands) == 0 {
			continue
		}
		busy, err := sw.advisoryPending(ctx, tok)
		if err != nil {
			errs = append(errs, err)
		}
		for _, c := range cands {
			s, ok := sw.suspects[c.seq]
			if !ok {
				s = suspect{since: now, subject: c.subject, id: c.id}
			}
			if busy || err != nil || now.Sub(s.since) < orphanGrace {
				next[c.seq] = s
				continue
			}
			if derr := sw.co.stream.DeleteMsg(ctx, c.seq); derr != nil && !errors.Is(derr, jetstream.ErrMsgNotFound) {
				errs = append(errs, fmt.Errorf("queue: delete orphan %d: %w", c.seq, derr))
				next[c.seq] = s
				continue
			}
			sw.log.Warn().Uint64("stream_seq", c.seq).Str("subject", c.subject).Str("request_id", c.id).
				Str("consumer", consumerName(tok)).
				Msg("request message below its consumer's ack floor (an ack cut by a server shutdown) removed from the stream")
		}
	}
	sw.suspects = next
	return errors.Join(errs...)
}

// keep carries a model's suspects over a failed check.
func (sw *orphanSweeper) keep(next map[uint64]suspect, tok string) {
	for seq, s := range sw.suspects {
		if r, _ := sw.co.c.subj.parseRequest(s.subject); r.modelToken == tok {
			next[seq] = s
		}
	}
}

// candidate is a stored message at or below its consumer's ack floor.
type candidate struct {
	seq     uint64
	subject string
	id      string
}

// candidates lists up to maxOrphansPerModel stored messages of a model at
// or below its consumer's ack floor, oldest first. A model without stored
// messages costs one message lookup; a missing consumer (the fetch loop
// creates it) has none.
func (sw *orphanSweeper) candidates(ctx context.Context, tok string) ([]candidate, error) {
	co := sw.co
	filter := co.c.subj.modelRequests(tok)
	first, err := co.stream.GetMsg(ctx, 1, jetstream.WithGetMsgSubject(filter))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("queue: orphan sweep: first message of %s: %w", filter, err)
	}
	cons, err := co.stream.Consumer(ctx, consumerName(tok))
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("queue: orphan sweep: consumer %s: %w", consumerName(tok), err)
	}
	floor := cons.CachedInfo().AckFloor.Stream
	var out []candidate
	for msg := first; msg.Sequence <= floor && len(out) < maxOrphansPerModel; {
		out = append(out, candidate{seq: msg.Sequence, subject: msg.Subject, id: msg.Header.Get(jetstream.MsgIDHeader)})
		msg, err = co.stream.GetMsg(ctx, msg.Sequence+1, jetstream.WithGetMsgSubject(filter))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			break
		}
		if err != nil {
			return out, fmt.Errorf("queue: orphan sweep: next message of %s: %w", filter, err)
		}
	}
	return out, nil
}

// advisoryPending reports whether the ADVISORIES stream holds a
// max-deliveries advisory of the model's consumer: the advisory loop has a
// poison message to settle, which sits below the ack floor too.
func (sw *orphanSweeper) advisoryPending(ctx context.Context, tok string) (bool, error) {
	c := sw.co.c
	if sw.adv == nil {
		adv, err := c.js.Stream(ctx, c.names.advisories)
		if err != nil {
			return false, fmt.Errorf("queue: orphan sweep: stream %s: %w", c.names.advisories, err)
		}
		sw.adv = adv
	}
	_, err := sw.adv.GetMsg(ctx, 1, jetstream.WithGetMsgSubject(c.subj.maxDeliveriesAdvisory(consumerName(tok))))
	switch {
	case errors.Is(err, jetstream.ErrMsgNotFound):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("queue: orphan sweep: advisories of %s: %w", consumerName(tok), err)
	}
	return true, nil
}

// modelTokens lists the model tokens this consumer fetches, sorted.
func (co *Consumer) modelTokens() []string {
	co.mu.Lock()
	defer co.mu.Unlock()
	out := make([]string, 0, len(co.models))
	for tok := range co.models {
		out = append(out, tok)
	}
	sort.Strings(out)
	return out
}
