package state

import (
	"context"
	"fmt"

	"github.com/salvo-run/salvo/pkg/lifecycle"
)

// Escalate starts the racing copy of a request of a batch (escalation,
// mode race): in one script on the batch's slot the original gets
// escalated_to, the copy (id lifecycle.CopyID) gets a pending record on
// model that its batch does not count (escalated_from, the original's
// custom_id, expires_at and result_subject), and the batch's escalating
// counter grows by one. At most one copy per original: a second call, a
// copy, an original that ended or is not counted, a batch that is over,
// and a copy id already taken all return started false with the reason.
// The caller publishes the copy's message after a started call.
func (s *Store) Escalate(ctx context.Context, ref lifecycle.Ref, model string) (started bool, reason string, err error) {
	if err := checkRef(ref); err != nil {
		return false, "", fmt.Errorf("state: escalate: %w", err)
	}
	copyID, ok := lifecycle.CopyID(ref.ID)
	if !ok || ref.BatchID == "" {
		return false, "no copy id (batchless, or the id is too long)", nil
	}
	keys := append(s.keys.requestKeys(ref), s.keys.request(lifecycle.Ref{ID: copyID, BatchID: ref.BatchID}))
	rep, err := s.run(ctx, scriptEscalate, keys, s.nowMS(), ref.ID, copyID, model, s.retentionMS())
	if err != nil {
		return false, "", fmt.Errorf("state: escalate %s: %w", ref.ID, err)
	}
	if rep.code() == "ok" {
		return true, "", nil
	}
	return false, rep.str(1), nil
}
