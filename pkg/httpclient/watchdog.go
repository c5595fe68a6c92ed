package httpclient

import (
	"context"
	"sync"
	"time"
)

// Phase names a part of an upstream call that has its own timeout.
type Phase int

// Phases in the order a call passes them; the watchdog only moves forward.
const (
	PhaseNone Phase = iota
	// PhaseUpload: the request body is being sent (Timeouts.UploadStall
	// without progress).
	PhaseUpload
	// PhaseFirstByte: the request is written, waiting for the response
	// headers, or for the first SSE event of a stream (Timeouts.FirstByte).
	PhaseFirstByte
	// PhaseIdle: the response is being read (Timeouts.Idle between reads or
	// SSE events).
	PhaseIdle
	// PhaseBody: the whole attempt (Timeouts.Body).
	PhaseBody
)

// String returns the phase's config name.
func (p Phase) String() string {
	switch p {
	case PhaseUpload:
		return "upload_stall"
	case PhaseFirstByte:
		return "first_byte"
	case PhaseIdle:
		return "idle"
	case PhaseBody:
		return "body"
	}
	return "none"
}

// watchdog cancels an attempt's context with a *TimeoutError when the
// current phase makes no progress for its timeout. Progress (touch) only
// moves a deadline; the single timer re-arms itself lazily when it fires
// early, so per-read progress costs a clock read and a mutex, not a timer.
type watchdog struct {
	cancel context.CancelCauseFunc

	mu       sync.Mutex
	timer    *time.Timer
	phase    Phase
	limit    time.Duration
	deadline time.Time
	done     bool
}

func newWatchdog(cancel context.CancelCauseFunc) *watchdog {
	w := &watchdog{cancel: cancel}
	w.timer = time.AfterFunc(time.Hour, w.fire)
	w.timer.Stop()
	return w
}

// arm enters phase p with timeout d; a phase earlier than the current one
// is ignored (trace callbacks may arrive out of order across goroutines).
func (w *watchdog) arm(p Phase, d time.Duration) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done || p <= w.phase {
		return
	}
	w.phase, w.limit = p, d
	w.deadline = time.Now().Add(d)
	w.timer.Reset(d)
}

// touch records progress in phase p, pushing its deadline out.
func (w *watchdog) touch(p Phase) {
	w.mu.Lock()
	if !w.done && w.phase == p {
		w.deadline = time.Now().Add(w.limit)
	}
	w.mu.Unlock()
}

// stop disarms the watchdog for good.
func (w *watchdog) stop() {
	w.mu.Lock()
	w.done = true
	w.timer.Stop()
	w.mu.Unlock()
}

func (w *watchdog) fire() {
	w.mu.Lock()
	if w.done || w.phase == PhaseNone {
		w.mu.Unlock()
		return
	}
	if rem := time.Until(w.deadline); rem > 0 {
		w.timer.Reset(rem)
		w.mu.Unlock()
		return
	}
	w.done = true
	err := &TimeoutError{Phase: w.phase, After: w.limit}
	w.mu.Unlock()
	w.cancel(err)
}
