package api

import (
	"github.com/rs/zerolog"

	"github.com/salvo-run/salvo/pkg/lifecycle"
)

// batchCancel cancels a batch in this order:
//
//  1. the store marks it cancelling (Redis is the truth: from here on no
//     request of it starts, wherever its message is);
//  2. the control event tells every worker to abort the batch's in-flight
//     calls (a failed publish is logged, see publishCancel);
//  3. the reply: the batch, cancelling (or already final);
//  4. in the background, Engine.EndQueued gives every queued request its
//     batch_cancelled result and purges the batch's messages.
//
// Steps 2 and 4 are skipped when the batch had already finished otherwise
// (completed, failed or expired): there is nothing left to stop.
func (s *Service) batchCancel(c *call) (any, error) {
	var p BatchParams
	if err := decode(c.data, s.cfg.MaxBody, &p); err != nil {
		return nil, err
	}
	if err := p.validate(); err != nil {
		return nil, err
	}
	tr, err := s.store.CancelBatch(c.ctx, p.ID)
	if err != nil {
		return nil, translate(err, batchNotFound(p.ID))
	}
	if tr.Finalized != nil && tr.Finalized.Status.Terminal() {
		// The cancel ended the batch outright (nothing left without a
		// result): its final event is this call's to publish.
		s.publishEvent(c, p.ID, lifecycle.BatchEventType(tr.Finalized.Status))
	}
	b, err := s.store.Batch(c.ctx, p.ID)
	if err != nil {
		return nil, translate(err, batchNotFound(p.ID))
	}
	if b.Status != lifecycle.BatchCancelling && b.Status != lifecycle.BatchCancelled {
		return NewBatchObject(b), nil
	}
	s.publishCancel(c, p.ID, "")
	c.after = func() { s.endQueued(p.ID, c.log) }
	return NewBatchObject(b), nil
}

// endQueued runs Engine.EndQueued for a cancelled batch in the background,
// one at a time per batch (a second cancel while one runs adds nothing: the
// running call ends every queued request), under the service's lifetime:
// Stop cancels it and waits. A call that fails or is cut short is logged;
// the sweep ends what it leaves.
func (s *Service) endQueued(batchID string, log zerolog.Logger) {
	s.mu.Lock()
	if s.ending[batchID] {
		s.mu.Unlock()
		log.Debug().Str("batch", batchID).Msg("queued requests already being ended")
		return
	}
	s.ending[batchID] = true
	s.background.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.background.Done()
		defer func() {
			s.mu.Lock()
			delete(s.ending, batchID)
			s.mu.Unlock()
		}()
		if err := s.engine.EndQueued(s.ctx, batchID); err != nil {
			log.Warn().Err(err).Str("batch", batchID).Msg("queued requests not ended; the sweep ends them")
		}
	}()
}
