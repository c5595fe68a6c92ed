package transport

import (
	"context"
	"sync"
)

// Slots is a resizable counting semaphore: the handler capacity of one
// model on one worker. The caller owns it and may change the limit at any
// time; lowering it below InUse lets running holders finish and admits no
// one until InUse drops below the new limit.
//
// InUse counts running handlers plus slots a fetch loop has reserved for an
// outstanding pull request (a fetched message always has its slot before it
// reaches a handler).
type Slots struct {
	mu      sync.Mutex
	limit   int
	inUse   int
	changed chan struct{} // closed and replaced on every release or resize
}

// NewSlots returns a semaphore with the given limit (negative means 0).
func NewSlots(limit int) *Slots {
	return &Slots{limit: max(limit, 0), changed: make(chan struct{})}
}

// SetLimit changes the limit (negative means 0).
func (s *Slots) SetLimit(n int) {
	s.mu.Lock()
	s.limit = max(n, 0)
	s.notifyLocked()
	s.mu.Unlock()
}

// Limit is the current limit.
func (s *Slots) Limit() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.limit
}

// InUse is the number of slots held.
func (s *Slots) InUse() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.inUse
}

// Free is the number of slots that can be acquired now.
func (s *Slots) Free() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return max(s.limit-s.inUse, 0)
}

// TryAcquire takes up to n free slots without blocking and returns how
// many it took.
func (s *Slots) TryAcquire(n int) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := min(max(s.limit-s.inUse, 0), max(n, 0))
	s.inUse += k
	return k
}

// Acquire takes one slot, blocking until one is free or ctx ends.
func (s *Slots) Acquire(ctx context.Context) error {
	for {
		s.mu.Lock()
		if s.inUse < s.limit {
			s.inUse++
			s.mu.Unlock()
			return nil
		}
		ch := s.changed
		s.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
}

// Release returns n slots. Releasing more than are held is a bug in the
// caller; InUse never goes below zero.
func (s *Slots) Release(n int) {
	if n <= 0 {
		return
	}
	s.mu.Lock()
	s.inUse = max(s.inUse-n, 0)
	s.notifyLocked()
	s.mu.Unlock()
}

// Changed returns a channel closed at the next Release or SetLimit.
func (s *Slots) Changed() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changed
}

func (s *Slots) notifyLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}
