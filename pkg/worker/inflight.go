package worker

import (
	"context"
	"errors"
	"sync"

	"github.com/salvo-run/salvo/pkg/lifecycle"
)

// Causes with which the worker cancels an in-flight call. The handler reads
// context.Cause to decide what to record.
var (
	// ErrShutdown: the worker is stopping; the request goes back to pending.
	ErrShutdown = errors.New("worker: shutting down")
	// ErrBatchCanceled: the request's batch was cancelled.
	ErrBatchCanceled = errors.New("worker: batch cancelled")
	// ErrRequestCanceled: the request itself was cancelled.
	ErrRequestCanceled = errors.New("worker: request cancelled")
	// ErrSuperseded: a racing copy of the request won.
	ErrSuperseded = errors.New("worker: request superseded")
	// ErrLeaseLost: the Redis lease moved to another worker; write nothing.
	ErrLeaseLost = errors.New("worker: lease lost")
	// errDeadline: the request's expires_at passed during the call.
	errDeadline = errors.New("worker: request deadline passed")
)

// task is one delivery the worker is working on.
type task struct {
	req    *lifecycle.Request
	d      Delivery
	cancel context.CancelCauseFunc

	mu   sync.Mutex
	held *lifecycle.Held // nil until claimed
	slot string          // fleet-wide slot holder id, "" when none
}

func (t *task) setHeld(h lifecycle.Held) {
	t.mu.Lock()
	t.held = &h
	t.mu.Unlock()
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
	tasks map[string]*task
}

func newInflight() *inflight { return &inflight{tasks: make(map[string]*task)} }

func (f *inflight) add(t *task) {
	f.mu.Lock()
	f.tasks[t.req.ID] = t
	f.mu.Unlock()
}

func (f *inflight) remove(t *task) {
	f.mu.Lock()
	if f.tasks[t.req.ID] == t {
		delete(f.tasks, t.req.ID)
	}
	f.mu.Unlock()
}

func (f *inflight) all() []*task {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]*task, 0, len(f.tasks))
	for _, t := range f.tasks {
		out = append(out, t)
	}
	return out
}

func (f *inflight) len() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.tasks)
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
