package state

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/salvo-run/salvo/pkg/lifecycle"
)

// finalizingShare is the terminal share from which a batch not yet final
// reads as finalizing (OpenAI semantics as the reference applies them).
const finalizingShare = 0.95

// NewBatch is what CreateBatch records. Times are kept at millisecond
// precision.
type NewBatch struct {
	ID               string
	CompletionWindow string
	Endpoint         string
	Metadata         map[string]string
	CreatedAt        time.Time
	ExpiresAt        time.Time
	// Total is the number of requests; it must be at least 1.
	Total int64
}

// metadataJSON is the canonical JSON of Metadata: nil and empty maps are
// both "{}".
func (b NewBatch) metadataJSON() string {
	if len(b.Metadata) == 0 {
		return "{}"
	}
	meta, _ := json.Marshal(b.Metadata) // map keys are sorted; strings cannot fail
	return string(meta)
}

// spec is the canonical encoding of the creation contents, compared to make
// CreateBatch idempotent: equivalent contents (nil or empty Metadata, times
// equal at millisecond precision) encode the same.
func (b NewBatch) spec() string {
	return strconv.Quote(b.ID) + "|" + strconv.Quote(b.CompletionWindow) + "|" + strconv.Quote(b.Endpoint) +
		"|" + b.metadataJSON() + "|" + strconv.FormatInt(toMS(b.CreatedAt), 10) +
		"|" + strconv.FormatInt(toMS(b.ExpiresAt), 10) + "|" + strconv.FormatInt(b.Total, 10)
}

func (b NewBatch) validate() error {
	if err := checkID("ID", b.ID); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidBatch, err)
	}
	switch {
	case b.Total < 1:
		return fmt.Errorf("%w: Total %d must be at least 1", ErrInvalidBatch, b.Total)
	case b.CreatedAt.IsZero():
		return fmt.Errorf("%w: CreatedAt is required", ErrInvalidBatch)
	case b.ExpiresAt.IsZero() || !b.ExpiresAt.After(b.CreatedAt):
		return fmt.Errorf("%w: ExpiresAt must be after CreatedAt", ErrInvalidBatch)
	}
	return nil
}

// CreateBatch records a batch with pending = Total. Creating the same id
// with equivalent contents again (nil and empty Metadata are equal) returns
// the stored batch (idempotent); other contents fail with ErrBatchConflict.
// An unusable batch (among others an id with a brace, whitespace or a
// control character) fails with ErrInvalidBatch.
func (s *Store) CreateBatch(ctx context.Context, b NewBatch) (lifecycle.Batch, error) {
	if err := b.validate(); err != nil {
		return lifecycle.Batch{}, err
	}
	rep, err := s.run(ctx, scriptCreateBatch, []string{s.keys.batch(b.ID)},
		b.spec(), b.ID, b.CompletionWindow, b.Endpoint, b.metadataJSON(),
		toMS(b.CreatedAt), toMS(b.ExpiresAt), b.Total, s.nowMS(), s.retentionMS())
	if err != nil {
		return lifecycle.Batch{}, fmt.Errorf("state: create batch %s: %w", b.ID, err)
	}
	if rep.code() == "conflict" {
		return lifecycle.Batch{}, fmt.Errorf("state: create batch %s: %w", b.ID, ErrBatchConflict)
	}
	return decodeBatch(rep.hash(1)), nil
}

// Batch reads a batch; ErrNotFound when it has no record.
func (s *Store) Batch(ctx context.Context, id string) (lifecycle.Batch, error) {
	m, err := s.client.HGetAll(ctx, s.keys.batch(id)).Result()
	if err != nil {
		return lifecycle.Batch{}, opErr("read batch", id, err)
	}
	if m["total"] == "" {
		return lifecycle.Batch{}, fmt.Errorf("state: read batch %s: %w", id, ErrNotFound)
	}
	return decodeBatch(m), nil
}

// CancelBatch marks the batch cancelling and counts every request not yet
// claimed as canceled at once. In-flight requests stay in_progress until
// their holders end them. Only Applied (false when the batch was already
// cancelled or final) and Finalized (non-nil when no request was in flight,
// so the cancel finished the batch) are meaningful in the result; State is
// canceled when applied. An id lifecycle would refuse fails with
// ErrInvalidID.
func (s *Store) CancelBatch(ctx context.Context, id string) (Transition, error) {
	if err := checkID("batch id", id); err != nil {
		return Transition{}, fmt.Errorf("state: cancel batch: %w", err)
	}
	rep, err := s.run(ctx, scriptCancelBatch, []string{s.keys.batch(id), s.keys.leases(id)},
		s.nowMS(), s.retentionMS())
	if err != nil {
		return Transition{}, fmt.Errorf("state: cancel batch %s: %w", id, err)
	}
	if rep.code() == "not_found" {
		return Transition{}, fmt.Errorf("state: cancel batch %s: %w", id, ErrNotFound)
	}
	t := Transition{Applied: rep.int(1) == 1}
	if t.Applied {
		t.State = lifecycle.StateCanceled
	}
	if m := rep.hash(2); m != nil {
		b := decodeBatch(m)
		t.Finalized = &b
	}
	return t, nil
}

// decodeBatch turns a batch hash into a Batch, deriving the status that is
// not stored (validating, in_progress, finalizing).
func decodeBatch(m map[string]string) lifecycle.Batch {
	b := lifecycle.Batch{
		ID:               m["id"],
		CompletionWindow: m["completion_window"],
		Endpoint:         m["endpoint"],
		CreatedAt:        fieldTime(m, "created_at"),
		ExpiresAt:        fieldTime(m, "expires_at"),
		CancellingAt:     fieldTime(m, "cancelling_at"),
		FinalizedAt:      fieldTime(m, "finalized_at"),
		Counts: lifecycle.Counts{
			Total:      fieldInt(m, "total"),
			Pending:    fieldInt(m, "pending"),
			InProgress: fieldInt(m, "in_progress"),
			Completed:  fieldInt(m, "completed"),
			Failed:     fieldInt(m, "failed"),
			Canceled:   fieldInt(m, "canceled"),
			Superseded: fieldInt(m, "superseded"),
			Expired:    fieldInt(m, "expired"),
		},
	}
	if md := m["metadata"]; md != "" && md != "{}" {
		_ = json.Unmarshal([]byte(md), &b.Metadata) // written by CreateBatch from a map
	}
	b.Status = batchStatus(m["status"], m["started_at"] != "", b.Counts)
	return b
}

func batchStatus(stored string, started bool, c lifecycle.Counts) lifecycle.BatchStatus {
	if stored != "" {
		return lifecycle.BatchStatus(stored)
	}
	switch {
	case !started:
		return lifecycle.BatchValidating
	case c.Total > 0 && float64(c.Terminal()) >= finalizingShare*float64(c.Total):
		return lifecycle.BatchFinalizing
	}
	return lifecycle.BatchInProgress
}
