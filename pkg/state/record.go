package state

import (
	"context"
	"fmt"

	"github.com/salvo-run/salvo/pkg/lifecycle"
)

// Record is a request's hash as the store keeps it. Defined in
// pkg/lifecycle so the engine needs no Redis client.
type Record = lifecycle.Record

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
		Ref:           ref,
		State:         lifecycle.State(m["state"]),
		Attempt:       int(fieldInt(m, "attempt")),
		Owner:         m["owner"],
		Token:         fieldInt(m, "fence"),
		Model:         m["model"],
		CustomID:      m["custom_id"],
		ExpiresAt:     fieldTime(m, "expires_at"),
		LeaseExpires:  fieldTime(m, "lease_until"),
		NotBefore:     fieldTime(m, "not_before"),
		CreatedAt:     fieldTime(m, "created_at"),
		ClaimedAt:     fieldTime(m, "claimed_at"),
		StartedAt:     fieldTime(m, "started_at"),
		FinishedAt:    fieldTime(m, "finished_at"),
		UpdatedAt:     fieldTime(m, "updated_at"),
		RoutedModel:   m["routed_model"],
		Status:        int(fieldInt(m, "status")),
		Failure:       failureOf(m["err_code"], m["err_msg"], int(fieldInt(m, "status"))),
		Reclaims:      int(fieldInt(m, "reclaims")),
		Delivery:      uint64(fieldInt(m, "delivery")),
		SupersededBy:  m["superseded_by"],
		EscalatedTo:   m["escalated_to"],
		EscalatedFrom: m["escalated_from"],
		Published:     m["published"] == "1",
		ResultSubject: m["result_subject"],
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
