package state

import (
	"context"
	"fmt"
	"time"

	"github.com/salvo-run/salvo/pkg/lifecycle"
)

// Record is a request's hash as the store keeps it: metadata only, never a
// response body (the unpublished result line aside, see Outbox).
type Record struct {
	Ref       lifecycle.Ref
	State     lifecycle.State
	Attempt   int
	Owner     string
	Token     int64
	Model     string
	CustomID  string
	ExpiresAt time.Time
	// LeaseExpires is when the current lease ends (zero when not held).
	LeaseExpires time.Time
	// NotBefore is when a pending retry may start (zero for none).
	NotBefore   time.Time
	CreatedAt   time.Time
	ClaimedAt   time.Time
	StartedAt   time.Time
	FinishedAt  time.Time
	UpdatedAt   time.Time
	RoutedModel string
	// Status is the last HTTP status, 0 if none.
	Status int
	// Failure is the last error, nil if none.
	Failure *lifecycle.Failure
	// Reclaims counts claims after a lease expired.
	Reclaims int
	// Delivery is the JetStream delivery count of the last claim.
	Delivery uint64
	// SupersededBy is the id of the racing copy that won, for a superseded
	// request.
	SupersededBy string
	// Published reports that MarkPublished was called.
	Published bool
	// Outbox is the result line stored by the terminal move, until published.
	Outbox []byte
}

// Ended is the record as the view a claim returns for an ended request:
// state, last failure and status, attempts spent, the published mark and
// the stored result line. JustEnded and Finalized stay unset: reading a
// record ends nothing. The view is meant for a terminal record
// (State.Terminal()); it is built from whatever the record holds.
func (r Record) Ended() *Ended {
	return &Ended{
		State:     r.State,
		Failure:   r.Failure,
		Status:    r.Status,
		Attempts:  r.Attempt,
		Published: r.Published,
		Outbox:    r.Outbox,
	}
}

// Request reads a request's record; ErrNotFound when it has none (never
// claimed, or expired by retention).
func (s *Store) Request(ctx context.Context, ref lifecycle.Ref) (Record, error) {
	m, err := s.client.HGetAll(ctx, s.keys.request(ref)).Result()
	if err != nil {
		return Record{}, opErr("read request", ref.ID, err)
	}
	if len(m) == 0 || m["state"] == "" {
		return Record{}, fmt.Errorf("state: read request %s: %w", ref.ID, ErrNotFound)
	}
	return decodeRecord(ref, m), nil
}

func decodeRecord(ref lifecycle.Ref, m map[string]string) Record {
	rec := Record{
		Ref:          ref,
		State:        lifecycle.State(m["state"]),
		Attempt:      int(fieldInt(m, "attempt")),
		Owner:        m["owner"],
		Token:        fieldInt(m, "fence"),
		Model:        m["model"],
		CustomID:     m["custom_id"],
		ExpiresAt:    fieldTime(m, "expires_at"),
		LeaseExpires: fieldTime(m, "lease_until"),
		NotBefore:    fieldTime(m, "not_before"),
		CreatedAt:    fieldTime(m, "created_at"),
		ClaimedAt:    fieldTime(m, "claimed_at"),
		StartedAt:    fieldTime(m, "started_at"),
		FinishedAt:   fieldTime(m, "finished_at"),
		UpdatedAt:    fieldTime(m, "updated_at"),
		RoutedModel:  m["routed_model"],
		Status:       int(fieldInt(m, "status")),
		Failure:      failureOf(m["err_code"], m["err_msg"], int(fieldInt(m, "status"))),
		Reclaims:     int(fieldInt(m, "reclaims")),
		Delivery:     uint64(fieldInt(m, "delivery")),
		SupersededBy: m["superseded_by"],
		Published:    m["published"] == "1",
	}
	if o, ok := m["outbox"]; ok && o != "" {
		rec.Outbox = []byte(o)
	}
	return rec
}

// failureOf rebuilds the last error from its stored fields.
func failureOf(code, msg string, status int) *lifecycle.Failure {
	if code == "" {
		return nil
	}
	return &lifecycle.Failure{Code: lifecycle.FailureCode(code), Message: msg, Status: status}
}
