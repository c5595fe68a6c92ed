package worker

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/salvo-run/salvo/pkg/lifecycle"
)

// markBatchMax caps the refs sent in one MarkPublished pipeline.
const markBatchMax = 512

// errMarkerStopped: the worker stopped before the mark went out.
var errMarkerStopped = errors.New("worker: publish marks stopped")

// marker groups "result published" marks from concurrent handlers into
// shared Redis pipelines, as a group commit: a flush starts as soon as a
// mark is queued, and the marks queued while it is in flight go together
// in the next one, so under load one pipeline carries many marks and a
// lone mark waits for no timer. The mark is what tells a later delivery of
// the same request (a redelivery, a duplicate published after the stream's
// duplicate window) that its result went out, so it must be durable before
// the message is acked: a handler publishes, adds the mark, waits for the
// pipeline that carried it, and only then acks (or naks when the pipeline
// failed, so the redelivery publishes again — deduplicated, as it comes
// well within the duplicate window — and marks again).
type marker struct {
	store    Store
	interval time.Duration
	timeout  time.Duration
	log      zerolog.Logger
	// onFinal gets each batch that turned final with a mark.
	onFinal func(lifecycle.Batch)

	mu      sync.Mutex
	pending []pendingMark
	kick    chan struct{}
	stopped chan struct{} // closed when run has returned
}

// pendingMark is one queued mark and the channel its outcome goes to.
type pendingMark struct {
	ref  lifecycle.Ref
	done chan error
}

func newMarker(store Store, interval, timeout time.Duration, log zerolog.Logger, onFinal func(lifecycle.Batch)) *marker {
	return &marker{
		store: store, interval: interval, timeout: timeout, log: log, onFinal: onFinal,
		kick: make(chan struct{}, 1), stopped: make(chan struct{}),
	}
}

// add queues the mark of ref; the returned channel receives nil once the
// pipeline that carried the mark succeeded, or its error.
func (m *marker) add(ref lifecycle.Ref) <-chan error {
	done := make(chan error, 1)
	m.mu.Lock()
	m.pending = append(m.pending, pendingMark{ref: ref, done: done})
	m.mu.Unlock()
	select {
	case m.kick <- struct{}{}: // wakes run, or is taken after its flush in flight
	default: // a wake-up is already queued: this mark rides with it
	}
	return done
}

// mark queues the mark of ref and waits for it; ctx bounds the wait.
func (m *marker) mark(ctx context.Context, ref lifecycle.Ref) error {
	done := m.add(ref)
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-m.stopped:
		select {
		case err := <-done: // carried by the last flush
			return err
		default:
			return errMarkerStopped
		}
	}
}

func (m *marker) run(ctx context.Context) {
	defer close(m.stopped)
	t := time.NewTicker(m.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			m.flush(context.WithoutCancel(ctx)) // detached: the last marks still go out
			return
		case <-t.C:
		case <-m.kick:
		}
		m.flush(ctx)
	}
}

func (m *marker) flush(parent context.Context) {
	for {
		m.mu.Lock()
		n := min(len(m.pending), markBatchMax)
		group := m.pending[:n:n]
		m.pending = m.pending[n:]
		m.mu.Unlock()
		if n == 0 {
			return
		}
		refs := make([]lifecycle.Ref, n)
		for i, p := range group {
			refs[i] = p.ref
		}
		ctx, cancel := context.WithTimeout(parent, m.timeout)
		final, err := m.store.MarkPublished(ctx, refs)
		cancel()
		for _, b := range final {
			m.onFinal(b)
		}
		if err != nil {
			m.log.Warn().Err(err).Int("refs", n).Msg("marking results published failed; their messages are redelivered and republished (deduplicated)")
		}
		for _, p := range group {
			p.done <- err
		}
	}
}
