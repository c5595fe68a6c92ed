package api_test

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"sync"

	"github.com/salvo-run/salvo/pkg/lifecycle"
)

// fakeBackend is an in-memory stand-in for the store, the control events
// and the engine, only good enough to exercise the API's decoding,
// validation, error codes, reply shapes and call order. The real store is
// exercised by the end-to-end tests of internal/config.
type fakeBackend struct {
	mu       sync.Mutex
	batches  map[string]lifecycle.Batch
	order    []string // batch ids, oldest first
	requests map[lifecycle.Ref]lifecycle.Record
	// calls logs every call as "<method> <args>", in order.
	calls []string
	// fail makes the named method return the error.
	fail map[string]error
	// endQueued, when set, is where EndQueued waits (or for its context).
	endQueued chan struct{}
	// endQueuedCause is the cause EndQueued's context was cancelled with.
	endQueuedCause error
}

func newFakeBackend() *fakeBackend {
	return &fakeBackend{
		batches:  map[string]lifecycle.Batch{},
		requests: map[lifecycle.Ref]lifecycle.Record{},
		fail:     map[string]error{},
	}
}

// record logs a call and returns the error set for it.
func (f *fakeBackend) record(method string, args ...any) error {
	f.calls = append(f.calls, method+" "+fmt.Sprint(args...))
	return f.fail[method]
}

// Calls returns the call log.
func (f *fakeBackend) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

func (f *fakeBackend) setFail(method string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail[method] = err
}

// blockEndQueued makes EndQueued wait until release is closed (or its
// context ends).
func (f *fakeBackend) blockEndQueued(release chan struct{}) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.endQueued = release
}

func (f *fakeBackend) put(b lifecycle.Batch) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.batches[b.ID]; !ok {
		f.order = append(f.order, b.ID)
	}
	f.batches[b.ID] = b
}

func (f *fakeBackend) putRequest(r lifecycle.Record) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests[r.Ref] = r
}

func (f *fakeBackend) CreateBatch(_ context.Context, nb lifecycle.NewBatch) (lifecycle.Batch, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record("CreateBatch", nb.ID); err != nil {
		return lifecycle.Batch{}, false, err
	}
	if b, ok := f.batches[nb.ID]; ok {
		conflict := func(field, stored, given string) error {
			return &lifecycle.ConflictError{BatchID: nb.ID, Field: field, Stored: stored, Given: given}
		}
		switch {
		case b.CompletionWindow != nb.CompletionWindow:
			return b, false, conflict("completion_window", b.CompletionWindow, nb.CompletionWindow)
		case b.Endpoint != nb.Endpoint:
			return b, false, conflict("endpoint", b.Endpoint, nb.Endpoint)
		case !maps.Equal(b.Metadata, nb.Metadata):
			return b, false, conflict("metadata", fmt.Sprint(b.Metadata), fmt.Sprint(nb.Metadata))
		case b.Sealed != (nb.Total > 0) || b.Sealed && b.Counts.Total != nb.Total:
			return b, false, conflict("total", strconv.FormatInt(b.Counts.Total, 10), strconv.FormatInt(nb.Total, 10))
		}
		return b, false, nil
	}
	b := lifecycle.Batch{
		ID: nb.ID, CompletionWindow: nb.CompletionWindow, Endpoint: nb.Endpoint, Metadata: nb.Metadata,
		Status: lifecycle.BatchValidating, Counts: lifecycle.Counts{Total: nb.Total}, Sealed: nb.Total > 0,
		CreatedAt: nb.CreatedAt, ExpiresAt: nb.ExpiresAt,
	}
	f.batches[b.ID] = b
	f.order = append(f.order, b.ID)
	return b, true, nil
}

func (f *fakeBackend) SealBatch(_ context.Context, id string, total int64) (lifecycle.Batch, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record("SealBatch", id, " ", total); err != nil {
		return lifecycle.Batch{}, false, err
	}
	b, ok := f.batches[id]
	switch {
	case !ok:
		return b, false, fmt.Errorf("state: seal %s: %w", id, lifecycle.ErrNotFound)
	case b.Sealed && b.Counts.Total != total:
		return b, false, &lifecycle.ConflictError{BatchID: id, Field: "total",
			Stored: strconv.FormatInt(b.Counts.Total, 10), Given: strconv.FormatInt(total, 10)}
	case total < b.Counts.Total:
		return b, false, fmt.Errorf("%w: %w", lifecycle.ErrInvalidBatch, &lifecycle.FieldError{
			Field: "total", Reason: fmt.Sprintf("%d is fewer than the %d requests seen", total, b.Counts.Total)})
	}
	b.Sealed, b.Counts.Total = true, total
	f.batches[id] = b
	return b, false, nil
}

func (f *fakeBackend) Batch(_ context.Context, id string) (lifecycle.Batch, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record("Batch", id); err != nil {
		return lifecycle.Batch{}, err
	}
	b, ok := f.batches[id]
	if !ok {
		return b, fmt.Errorf("state: batch %s: %w", id, lifecycle.ErrNotFound)
	}
	return b, nil
}

func (f *fakeBackend) ListBatches(_ context.Context, q lifecycle.BatchQuery) (lifecycle.BatchPage, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record("ListBatches", q.After); err != nil {
		return lifecycle.BatchPage{}, err
	}
	var page lifecycle.BatchPage
	skipping := q.After != ""
	for i := len(f.order) - 1; i >= 0; i-- {
		b := f.batches[f.order[i]]
		if skipping {
			skipping = b.ID != q.After
			continue
		}
		if q.Status != "" && b.Status != q.Status {
			continue
		}
		if len(page.Batches) == q.Limit {
			page.HasMore = true
			break
		}
		page.Batches = append(page.Batches, b)
	}
	return page, nil
}

func (f *fakeBackend) CancelBatch(_ context.Context, id string) (lifecycle.Transition, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record("CancelBatch", id); err != nil {
		return lifecycle.Transition{}, err
	}
	b, ok := f.batches[id]
	if !ok {
		return lifecycle.Transition{}, fmt.Errorf("state: cancel %s: %w", id, lifecycle.ErrNotFound)
	}
	if b.Status.Terminal() || b.Status == lifecycle.BatchCancelling {
		return lifecycle.Transition{}, nil
	}
	b.Status = lifecycle.BatchCancelling
	b.CancellingAt = b.CreatedAt
	f.batches[id] = b
	return lifecycle.Transition{Applied: true}, nil
}

func (f *fakeBackend) CancelRequest(_ context.Context, ref lifecycle.Ref) (lifecycle.Transition, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record("CancelRequest", ref.BatchID, "/", ref.ID); err != nil {
		return lifecycle.Transition{}, err
	}
	r, ok := f.requests[ref]
	if !ok {
		return lifecycle.Transition{}, fmt.Errorf("state: cancel %s: %w", ref.ID, lifecycle.ErrNotFound)
	}
	t := lifecycle.Transition{Previous: r.State, State: r.State}
	if !r.State.Terminal() {
		r.State, t.State, t.Applied = lifecycle.StateCanceled, lifecycle.StateCanceled, true
		f.requests[ref] = r
	}
	return t, nil
}

func (f *fakeBackend) Request(_ context.Context, ref lifecycle.Ref) (lifecycle.Record, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record("Request", ref.BatchID, "/", ref.ID); err != nil {
		return lifecycle.Record{}, err
	}
	r, ok := f.requests[ref]
	if !ok {
		return r, fmt.Errorf("state: request %s: %w", ref.ID, lifecycle.ErrNotFound)
	}
	return r, nil
}

func (f *fakeBackend) PublishCancel(_ context.Context, batchID, requestID string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.record("PublishCancel", batchID, "/", requestID)
}

func (f *fakeBackend) PublishBatchEvent(_ context.Context, batchID string, t lifecycle.BatchEventType) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.record("PublishBatchEvent", batchID, " ", t)
}

func (f *fakeBackend) EndQueued(ctx context.Context, batchID string) error {
	f.mu.Lock()
	err := f.record("EndQueued", batchID)
	wait := f.endQueued
	f.mu.Unlock()
	if wait != nil {
		select {
		case <-wait:
		case <-ctx.Done():
			f.mu.Lock()
			f.endQueuedCause = context.Cause(ctx)
			f.mu.Unlock()
			return context.Cause(ctx)
		}
	}
	return err
}
