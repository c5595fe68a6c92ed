package worker

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/salvo-run/salvo/pkg/lifecycle"
)

// Causes with which the worker cancels an in-flight call. The handler reads
// context.Cause to decide what to record.
var (
	// ErrShutdown: the worker is stopping; the request goes back to pending.
	ErrShutdown = errors.New("worker: shutting down")
	// ErrBatchCanceled: a control event, confirmed by Redis, says the
	// request's batch was cancelled.
	ErrBatchCanceled = errors.New("worker: batch cancelled")
	// ErrRequestCanceled: a control event, confirmed by Redis, says the
	// request was cancelled.
	ErrRequestCanceled = errors.New("worker: request cancelled")
	// ErrSuperseded: a control event, confirmed by Redis, says a racing copy
	// of the request won.
	ErrSuperseded = errors.New("worker: request superseded")
	// ErrLeaseLost: the Redis lease moved to another worker; write nothing.
	ErrLeaseLost = errors.New("worker: lease lost")
	// errDeadline: the request's expires_at passed during the call.
	errDeadline = errors.New("worker: request deadline passed")
)

// task is one delivery the worker is working on. Two deliveries of the same
// request (a duplicate publish, a redelivery) are two tasks.
type task struct {
	req    *lifecycle.Request
	d      Delivery
	cancel context.CancelCauseFunc

	mu   sync.Mutex
	held *lifecycle.Held // nil until claimed
	slot string          // fleet-wide slot holder id, "" when none
	// slotModel is the model whose fleet-wide slot slot is: the request's,
	// or its escalation model's after route at claim.
	slotModel string
	// ending is set once the call is over and the handler writes the
	// request's outcome: the heartbeat still refreshes the lease (the write
	// may be retried), but a refresh that finds the lease gone no longer
	// means the call must be aborted — most often the handler's own write
	// ended the request — and the write itself reports a lease truly lost.
	ending bool
}

// setEnding marks the call as over (see ending).
func (t *task) setEnding() {
	t.mu.Lock()
	t.ending = true
	t.mu.Unlock()
}

// leaseLost reports whether a refresh of h that found no lease means this
// task lost its lease: the task still holds h (same token) and its call is
// not over.
func (t *task) leaseLost(h lifecycle.Held) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return !t.ending && t.held != nil && t.held.Lease.Token == h.Lease.Token
}

func (t *task) setHeld(h lifecycle.Held) {
	t.mu.Lock()
	t.held = &h
	t.mu.Unlock()
}

func (t *task) setSlot(model, holder string) {
	t.mu.Lock()
	t.slotModel, t.slot = model, holder
	t.mu.Unlock()
}

// slotOf is the fleet-wide slot the task holds and its model; holder ""
// when none.
func (t *task) slotOf() (model, holder string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.slotModel, t.slot
}

func (t *task) snapshot() (*lifecycle.Held, string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.held, t.slot
}

// inflight indexes the tasks of this worker for heartbeats, control events
// and shutdown.
type inflight struct {
	mu    sync.Mutex
	tasks map[*task]struct{}
}

func newInflight() *inflight { return &inflight{tasks: make(map[*task]struct{})} }

func (f *inflight) add(t *task) {
	f.mu.Lock()
	f.tasks[t] = struct{}{}
	f.mu.Unlock()
}

// remove drops t; safe to call twice.
func (f *inflight) remove(t *task) {
	f.mu.Lock()
	delete(f.tasks, t)
	f.mu.Unlock()
}

// has reports whether t is still in flight (not yet settled).
func (f *inflight) has(t *task) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.tasks[t]
	return ok
}

func (f *inflight) all() []*task {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]*task, 0, len(f.tasks))
	for t := range f.tasks {
		out = append(out, t)
	}
	return out
}

func (f *inflight) len() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.tasks)
}

// any reports whether a task matches.
func (f *inflight) any(match func(*task) bool) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for t := range f.tasks {
		if match(t) {
			return true
		}
	}
	return false
}

// cancel cancels the tasks that match with cause and returns how many.
func (f *inflight) cancel(match func(*task) bool, cause error) int {
	n := 0
	for _, t := range f.all() {
		if match(t) {
			t.cancel(cause)
			n++
		}
	}
	return n
}

// settling wraps a delivery so that finishing it (ack, nak, term) first
// takes the task out of the heartbeat: an in-progress sent after a delayed
// nak would restart the message's AckWait.
type settling struct {
	Delivery
	done func()
}

func (s settling) Ack(ctx context.Context) error {
	s.done()
	return s.Delivery.Ack(ctx)
}

func (s settling) Nak(ctx context.Context, delay time.Duration) error {
	s.done()
	return s.Delivery.Nak(ctx, delay)
}

func (s settling) Term(ctx context.Context, reason string) error {
	s.done()
	return s.Delivery.Term(ctx, reason)
}
