package state

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/salvo-run/salvo/pkg/lifecycle"
)

// NewBatch is what CreateBatch records. Defined in pkg/lifecycle so the
// batch API needs no Redis client.
type NewBatch = lifecycle.NewBatch

// metadataJSON is the canonical JSON of a batch's metadata: nil and empty
// maps are both "{}".
func metadataJSON(md map[string]string) string {
	if len(md) == 0 {
		return "{}"
	}
	meta, _ := json.Marshal(md) // map keys are sorted; strings cannot fail
	return string(meta)
}

func validateNewBatch(b NewBatch) error {
	if err := checkID("ID", b.ID); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidBatch, err)
	}
	switch {
	case b.Total < 0:
		return fmt.Errorf("%w: total %d must not be negative (0: open until sealed)", ErrInvalidBatch, b.Total)
	case b.CreatedAt.IsZero():
		return fmt.Errorf("%w: created_at is required", ErrInvalidBatch)
	case b.ExpiresAt.IsZero() || !b.ExpiresAt.After(b.CreatedAt):
		return fmt.Errorf("%w: expires_at must be after created_at", ErrInvalidBatch)
	}
	return nil
}

// CreateBatch records a batch: sealed with pending = Total, or open (Total
// 0) to count its requests as they arrive until SealBatch. created reports
// that this call made it. Creating the same id again with the same
// completion window, endpoint, metadata and total (nil and empty Metadata
// are equal) returns the stored batch with its first times; other contents
// fail with a *lifecycle.ConflictError naming the field (errors.Is
// ErrBatchConflict). An unusable batch (among others an id with a brace,
// whitespace or a control character) fails with ErrInvalidBatch. The batch
// enters the list and sweep indexes.
func (s *Store) CreateBatch(ctx context.Context, b NewBatch) (lifecycle.Batch, bool, error) {
	if err := validateNewBatch(b); err != nil {
		return lifecycle.Batch{}, false, err
	}
	rep, err := s.run(ctx, scriptCreateBatch, []string{s.keys.batch(b.ID)},
		b.ID, b.CompletionWindow, b.Endpoint, metadataJSON(b.Metadata),
		toMS(b.CreatedAt), toMS(b.ExpiresAt), b.Total, s.nowMS(), s.retentionMS())
	if err != nil {
		return lifecycle.Batch{}, false, fmt.Errorf("state: create batch %s: %w", b.ID, err)
	}
	if rep.code() == "conflict" {
		return lifecycle.Batch{}, false, &lifecycle.ConflictError{BatchID: b.ID, Field: rep.str(1), Stored: rep.str(2), Given: rep.str(3)}
	}
	out := decodeBatch(rep.hash(1))
	// The indexes live outside the batch's hash slot, so they are written
	// after the script; a create retried after a failure here writes them
	// again (ZADD of the same member and score).
	pipe := s.client.Pipeline()
	pipe.ZAdd(ctx, s.keys.batchesCreated(), redis.Z{Score: float64(toMS(out.CreatedAt)), Member: out.ID})
	pipe.ZAdd(ctx, s.keys.batchesLive(), redis.Z{Score: float64(toMS(out.ExpiresAt)), Member: out.ID})
	if err := s.wait.exec(ctx, pipe); err != nil {
		return lifecycle.Batch{}, false, opErr("index batch", b.ID, err)
	}
	return out, rep.code() == "created", nil
}

// SealBatch fixes the total of an open batch: the requests not seen yet
// count as pending, and the batch can finish once they have all ended.
// finalized reports that this seal turned the batch final (every request
// it saw had ended with its result out): its final event is then the
// caller's to publish. Sealing a sealed batch with its total returns it
// unchanged; another total fails with a *lifecycle.ConflictError (field
// total), a total below the requests already seen with ErrInvalidBatch, an
// unknown batch with ErrNotFound.
func (s *Store) SealBatch(ctx context.Context, id string, total int64) (b lifecycle.Batch, finalized bool, err error) {
	if err := checkID("batch id", id); err != nil {
		return lifecycle.Batch{}, false, fmt.Errorf("state: seal batch: %w", err)
	}
	if total < 1 {
		return lifecycle.Batch{}, false, fmt.Errorf("state: seal batch %s: %w: total %d must be at least 1", id, ErrInvalidBatch, total)
	}
	rep, err := s.run(ctx, scriptSealBatch, []string{s.keys.batch(id), s.keys.leases(id)},
		total, s.nowMS(), s.retentionMS())
	if err != nil {
		return lifecycle.Batch{}, false, fmt.Errorf("state: seal batch %s: %w", id, err)
	}
	switch rep.code() {
	case "not_found":
		return lifecycle.Batch{}, false, fmt.Errorf("state: seal batch %s: %w", id, ErrNotFound)
	case "conflict":
		return lifecycle.Batch{}, false, &lifecycle.ConflictError{BatchID: id, Field: "total", Stored: rep.str(1), Given: fmt.Sprint(total)}
	case "too_few":
		return lifecycle.Batch{}, false, fmt.Errorf("state: seal batch %s: %w: total %d is less than the %s requests already received",
			id, ErrInvalidBatch, total, rep.str(1))
	}
	b = decodeBatch(rep.hash(2))
	return b, rep.int(1) == 1 && b.Status.Terminal(), nil
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

// CancelBatch marks the batch cancelling, seals it (an open batch at the
// requests it has seen) and counts every request not yet claimed as
// canceled at once. In-flight requests stay in_progress until their holders
// end them. Only Applied (false when the batch was already cancelled or
// final) and Finalized (non-nil when no request was in flight, so the
// cancel ended its last request) are meaningful in the result; State is
// canceled when applied. An id lifecycle would refuse fails with
// ErrInvalidID.
func (s *Store) CancelBatch(ctx context.Context, id string) (Transition, error) {
	return s.batchMove(ctx, "cancel batch", scriptCancelBatch, id, lifecycle.StateCanceled)
}

// ExpireBatch is the sweep's move on a batch past its expires_at: marked
// expiring, sealed, and every request not yet claimed counted expired at
// once. In-flight requests end at the deadline by their holders, or by
// EndStranded. Applied is false when the batch is cancelled, finalizing or
// expiring already; a batch not past its expires_at fails with
// *lifecycle.NotYetError.
func (s *Store) ExpireBatch(ctx context.Context, id string) (Transition, error) {
	return s.batchMove(ctx, "expire batch", scriptExpireBatch, id, lifecycle.StateExpired)
}

func (s *Store) batchMove(ctx context.Context, op string, sc *redis.Script, id string, to lifecycle.State) (Transition, error) {
	if err := checkID("batch id", id); err != nil {
		return Transition{}, fmt.Errorf("state: %s: %w", op, err)
	}
	rep, err := s.run(ctx, sc, []string{s.keys.batch(id), s.keys.leases(id)}, s.nowMS(), s.retentionMS())
	if err != nil {
		return Transition{}, fmt.Errorf("state: %s %s: %w", op, id, err)
	}
	switch rep.code() {
	case "not_found":
		return Transition{}, fmt.Errorf("state: %s %s: %w", op, id, ErrNotFound)
	case "not_yet":
		return Transition{}, fmt.Errorf("state: %s %s: %w", op, id, &NotYetError{NotBefore: msTime(rep.int(1))})
	}
	t := Transition{Applied: rep.int(1) == 1}
	if t.Applied {
		t.State = to
	}
	if m := rep.hash(2); m != nil {
		b := decodeBatch(m)
		t.Finalized = &b
	}
	return t, nil
}

// FinishBatch turns a batch whose requests have all ended final now, even
// with results missing (their messages were lost, so they never come):
// the sweep's move after the finalizing grace. It returns the final batch,
// or nil when the batch is not finalizing (still running, or final
// already).
func (s *Store) FinishBatch(ctx context.Context, id string) (*lifecycle.Batch, error) {
	rep, err := s.run(ctx, scriptFinishBatch, []string{s.keys.batch(id)}, s.nowMS(), s.retentionMS())
	if err != nil {
		return nil, fmt.Errorf("state: finish batch %s: %w", id, err)
	}
	if rep.code() != "final" {
		return nil, nil
	}
	b := decodeBatch(rep.hash(1))
	return &b, nil
}

// ClaimBatchEvent takes the publication of a batch event (created, or the
// final event of a final batch) from its outbox when it is still
// unpublished and was set or last taken at least stale ago; it returns the
// batch to put in the event, or nil when there is nothing to take. The
// creator and the finalizer take with stale 0 at once; the sweep takes what
// they left after a longer stale, so two publishers rarely overlap.
func (s *Store) ClaimBatchEvent(ctx context.Context, id string, t lifecycle.BatchEventType, stale time.Duration) (*lifecycle.Batch, error) {
	rep, err := s.run(ctx, scriptBatchEvent, []string{s.keys.batch(id)}, "claim", outboxOf(t), s.nowMS(), stale.Milliseconds())
	if err != nil {
		return nil, fmt.Errorf("state: claim batch event %s %s: %w", id, t, err)
	}
	if rep.code() != "ok" {
		return nil, nil
	}
	b := decodeBatch(rep.hash(1))
	if t != lifecycle.EventCreated && lifecycle.BatchEventType(b.Status) != t {
		return nil, nil // the outbox holds the batch's final event, not t
	}
	return &b, nil
}

// BatchEventDone records that a batch event is published.
func (s *Store) BatchEventDone(ctx context.Context, id string, t lifecycle.BatchEventType) error {
	if _, err := s.run(ctx, scriptBatchEvent, []string{s.keys.batch(id)}, "done", outboxOf(t), s.nowMS(), 0); err != nil {
		return fmt.Errorf("state: batch event done %s %s: %w", id, t, err)
	}
	return nil
}

// outboxOf names the outbox field of an event type: created, or final for
// every terminal status.
func outboxOf(t lifecycle.BatchEventType) string {
	if t == lifecycle.EventCreated {
		return "created"
	}
	return "final"
}

// decodeBatch turns a batch hash into a Batch.
func decodeBatch(m map[string]string) lifecycle.Batch {
	b := lifecycle.Batch{
		ID:               m["id"],
		CompletionWindow: m["completion_window"],
		Endpoint:         m["endpoint"],
		Sealed:           m["sealed"] != "0",
		ResultsPublished: fieldInt(m, "published"),
		ResultsMissing:   fieldInt(m, "results_missing"),
		CreatedAt:        fieldTime(m, "created_at"),
		ExpiresAt:        fieldTime(m, "expires_at"),
		InProgressAt:     fieldTime(m, "started_at"),
		FinalizingAt:     fieldTime(m, "finalizing_at"),
		CancellingAt:     fieldTime(m, "cancelling_at"),
		FinalizedAt:      fieldTime(m, "finalized_at"),
		CompletedAt:      fieldTime(m, "completed_at"),
		FailedAt:         fieldTime(m, "failed_at"),
		ExpiredAt:        fieldTime(m, "expired_at"),
		CancelledAt:      fieldTime(m, "cancelled_at"),
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
		Escalating: fieldInt(m, "escalating"),
	}
	if md := m["metadata"]; md != "" && md != "{}" {
		_ = json.Unmarshal([]byte(md), &b.Metadata) // written by CreateBatch from a map
	}
	b.Status = lifecycle.BatchStatus(m["status"])
	if b.Status == "" { // a record older than the stored status
		b.Status = lifecycle.BatchValidating
		if m["started_at"] != "" {
			b.Status = lifecycle.BatchInProgress
		}
	}
	return b
}
