package worker

import (
	"context"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/salvo-run/salvo/pkg/lifecycle"
)

// markBatchMax caps the refs sent in one MarkPublished pipeline.
const markBatchMax = 512

// marker groups "result published" marks from concurrent handlers into one
// Redis pipeline per interval. A lost mark costs nothing but a deduplicated
// republish on redelivery, so marks are best effort.
type marker struct {
	store    Store
	interval time.Duration
	timeout  time.Duration
	log      zerolog.Logger

	mu      sync.Mutex
	pending []lifecycle.Ref
	kick    chan struct{}
}

func newMarker(store Store, interval, timeout time.Duration, log zerolog.Logger) *marker {
	return &marker{store: store, interval: interval, timeout: timeout, log: log, kick: make(chan struct{}, 1)}
}

func (m *marker) add(ref lifecycle.Ref) {
	m.mu.Lock()
	m.pending = append(m.pending, ref)
	full := len(m.pending) >= markBatchMax
	m.mu.Unlock()
	if full {
		select {
		case m.kick <- struct{}{}:
		default:
		}
	}
}

func (m *marker) run(ctx context.Context) {
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
		refs := m.pending[:n:n]
		m.pending = m.pending[n:]
		m.mu.Unlock()
		if n == 0 {
			return
		}
		ctx, cancel := context.WithTimeout(parent, m.timeout)
		err := m.store.MarkPublished(ctx, refs)
		cancel()
		if err != nil {
			m.log.Warn().Err(err).Int("refs", n).Msg("marking results published failed; a redelivery will republish them (deduplicated)")
		}
	}
}
