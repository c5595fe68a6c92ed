package worker

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/salvo-run/salvo/pkg/lifecycle"
	"github.com/salvo-run/salvo/pkg/ratelimit"
)

// controlChecksMax bounds the control events being checked against Redis at
// once. An event that finds every check busy is skipped (and logged): the
// calls it names run to their end, where Redis decides what is written, so
// a skipped event costs money, never correctness, and a flood of events
// costs at most this many concurrent Redis reads.
const controlChecksMax = 8

// Control events are hints, and anyone allowed to publish on <p>.ctl.> can
// send one: a worker aborts a call only after Redis confirms the cancel or
// supersede. Per event, the worker
//
//  1. finds the in-flight tasks the event names (in memory; none → done,
//     no Redis read);
//  2. reads Redis once, off the NATS callback goroutine: the batch for a
//     batch cancel (however many tasks match), the request's record for a
//     request cancel or a supersede;
//  3. cancels the matching tasks with the event's cause only if Redis backs
//     the event; otherwise it logs the event at warn and aborts nothing.
//
// The aborted handler still reads the record before writing (abort.go):
// the record, not the event, decides what is recorded.

// controlCheck is one control event turned into what to read and what to
// abort.
type controlCheck struct {
	ev    lifecycle.ControlEvent
	cause error
	// ref is the request the event names; for a batch cancel only
	// ref.BatchID is set.
	ref   lifecycle.Ref
	batch bool
}

// matches reports whether t is one of the event's tasks.
func (c controlCheck) matches(t *task) bool {
	if c.batch {
		return t.req.BatchID == c.ref.BatchID
	}
	return t.req.ID == c.ref.ID && t.req.BatchID == c.ref.BatchID
}

// onControl is the control subscription's callback. It runs on the NATS
// callback goroutine, so it only looks at memory; the Redis read runs on a
// goroutine of its own.
func (w *Worker) onControl(ev lifecycle.ControlEvent) {
	c := controlCheck{ev: ev}
	switch {
	case ev.Kind == lifecycle.ControlCancel && ev.RequestID != "":
		c.cause, c.ref = ErrRequestCanceled, lifecycle.Ref{ID: ev.RequestID, BatchID: ev.BatchID}
	case ev.Kind == lifecycle.ControlCancel && ev.BatchID != "":
		c.cause, c.ref, c.batch = ErrBatchCanceled, lifecycle.Ref{BatchID: ev.BatchID}, true
	case ev.Kind == lifecycle.ControlHold && ev.Budget != "" && ev.Model != "":
		// Nothing to check or abort: the budget store holds the truth,
		// and the next admission of this budget asks it.
		w.limits.Held(ratelimit.Key{Budget: ev.Budget, Model: ev.Model})
		return
	case ev.Kind == lifecycle.ControlSupersede && ev.RequestID != "":
		// A supersede names the request id only: the batch is the one of
		// the task we hold (the first, should ids repeat across batches).
		c.cause = ErrSuperseded
		for _, t := range w.tasks.all() {
			if t.req.ID == ev.RequestID {
				c.ref = t.req.Ref()
				break
			}
		}
		if c.ref.ID == "" {
			return
		}
	default:
		w.controlLogger(ev).Warn().Msg("control event of unknown kind or without ids skipped")
		return
	}
	if c.batch || errors.Is(c.cause, ErrRequestCanceled) {
		// Remembered even when nothing here matches yet: a request claimed
		// just before the cancel may be about to start its call (run
		// checks Redis first then, see cancelHinted).
		w.hints.add(c.ref, w.clock())
	}
	if !w.tasks.any(c.matches) {
		return // nothing in flight here: no read, nothing to abort
	}
	select {
	case w.controlChecks <- struct{}{}:
	default:
		w.controlLogger(ev).Warn().Int("checks_running", controlChecksMax).
			Msg("too many control events being checked; event skipped, its calls run to their end")
		return
	}
	w.checking.Add(1)
	go func() {
		defer w.checking.Done()
		defer func() { <-w.controlChecks }()
		w.checkControl(c)
	}()
}

// checkControl reads Redis once and aborts the event's tasks if Redis backs
// the event.
func (w *Worker) checkControl(c controlCheck) {
	ctx, cancel := w.opCtx()
	defer cancel()
	backed, seen, err := w.backed(ctx, c)
	if err != nil {
		w.controlLogger(c.ev).Warn().Err(err).Msg("cannot check the control event against redis; aborting nothing")
		return
	}
	if !backed {
		w.controlLogger(c.ev).Warn().Str("redis_says", seen).
			Msg("control event not backed by redis; aborting nothing")
		return
	}
	// Tasks that arrived since the event are matched too: Redis says they
	// are over.
	if n := w.tasks.cancel(c.matches, c.cause); n > 0 {
		w.controlLogger(c.ev).Info().Int("aborted", n).Msg("control event backed by redis aborted in-flight calls")
	}
}

// backed is the one Redis read of a control event: whether Redis says what
// the event says, and what it says instead (for the log).
func (w *Worker) backed(ctx context.Context, c controlCheck) (bool, string, error) {
	if c.batch {
		b, err := w.store.Batch(ctx, c.ref.BatchID)
		if errors.Is(err, lifecycle.ErrNotFound) {
			return false, "batch not found", nil
		}
		if err != nil {
			return false, "", err
		}
		return batchCancelled(b), string(b.Status), nil
	}
	rec, err := w.store.Request(ctx, c.ref)
	if errors.Is(err, lifecycle.ErrNotFound) {
		return false, "request not found", nil
	}
	if err != nil {
		return false, "", err
	}
	want := lifecycle.StateCanceled
	if errors.Is(c.cause, ErrSuperseded) {
		want = lifecycle.StateSuperseded
	}
	return rec.State == want, string(rec.State), nil
}

// batchCancelled reports whether b is being or was cancelled.
func batchCancelled(b lifecycle.Batch) bool {
	return b.Status == lifecycle.BatchCancelling || b.Status == lifecycle.BatchCancelled || !b.CancellingAt.IsZero()
}

// controlLogger names the event in every line logged about it.
func (w *Worker) controlLogger(ev lifecycle.ControlEvent) *zerolog.Logger {
	l := w.log.With().Str("kind", string(ev.Kind)).Str("batch_id", ev.BatchID).
		Str("request_id", ev.RequestID).Str("by", ev.By).Logger()
	return &l
}

// cancelHintTTL is how long a cancel event is remembered for the calls
// about to start.
const cancelHintTTL = time.Minute

// cancelHints remembers the batches and requests cancel events named in
// the last cancelHintTTL: a request claimed just before a cancel could
// otherwise start its call after the cancel's reply, aborted only a
// moment later. Bounded by the events of one minute.
type cancelHints struct {
	mu   sync.Mutex
	seen map[lifecycle.Ref]time.Time
}

func (h *cancelHints) add(ref lifecycle.Ref, now time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.seen == nil {
		h.seen = map[lifecycle.Ref]time.Time{}
	}
	for r, at := range h.seen {
		if now.Sub(at) > cancelHintTTL {
			delete(h.seen, r)
		}
	}
	h.seen[ref] = now
}

// named reports whether a recent cancel event named req or its batch.
func (h *cancelHints) named(req *lifecycle.Request) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.seen) == 0 {
		return false
	}
	_, batch := h.seen[lifecycle.Ref{BatchID: req.BatchID}]
	_, one := h.seen[req.Ref()]
	return (batch && req.BatchID != "") || one
}

// cancelHinted reports, just before the call goes out, whether a recent
// cancel event named this request or its batch and Redis confirms it: the
// request is then handed back without a call (its next claim ends it).
// Without a recent event it reads nothing.
func (x *execution) cancelHinted() bool {
	if !x.w.hints.named(x.req) {
		return false
	}
	ctx, cancel := x.w.opCtx()
	defer cancel()
	rec, err := x.w.store.Request(ctx, x.req.Ref())
	if err == nil && rec.State == lifecycle.StateCanceled {
		return true
	}
	return x.req.BatchID != "" && x.batchCancelled(ctx)
}

// announceHold publishes that the upstream asked to hold key, once the
// hold is in the budget store: every worker then asks the store before its
// next call of that budget (the hold case of onControl).
func (w *Worker) announceHold(key ratelimit.Key) {
	ctx, cancel := w.opCtx()
	defer cancel()
	if err := w.queue.PublishHold(ctx, key.Budget, key.Model); err != nil {
		w.log.Warn().Err(err).Str("budget", key.Budget).Str("model", key.Model).
			Msg("announcing the upstream's hold failed; other workers learn it at their next response")
	}
}
