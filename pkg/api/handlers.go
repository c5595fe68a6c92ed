package api

import (
	"fmt"

	"github.com/salvo-run/salvo/pkg/lifecycle"
)

// The endpoint handlers. Each decodes and validates its body, calls the
// store, and returns the reply body or an error that replyError answers
// with (store errors are translated here, where the handler knows what
// "not found" means).

func (s *Service) batchCreate(c *call) (any, error) {
	var p CreateParams
	if err := decode(c.data, s.cfg.MaxBody, &p); err != nil {
		return nil, err
	}
	nb, err := p.newBatch(s.clock())
	if err != nil {
		return nil, err
	}
	b, created, err := s.store.CreateBatch(c.ctx, nb)
	if err != nil {
		return nil, translate(err, batchNotFound(nb.ID))
	}
	if created {
		// The outbox in Redis keeps the event until it is out: a failure
		// here is retried by the sweep, so the create still succeeds.
		s.publishEvent(c, b.ID, lifecycle.EventCreated)
	}
	return NewBatchObject(b), nil
}

func (s *Service) batchSeal(c *call) (any, error) {
	var p SealParams
	if err := decode(c.data, s.cfg.MaxBody, &p); err != nil {
		return nil, err
	}
	if err := p.validate(); err != nil {
		return nil, err
	}
	b, finalized, err := s.store.SealBatch(c.ctx, p.ID, p.Total)
	if err != nil {
		return nil, translate(err, batchNotFound(p.ID))
	}
	if finalized {
		// This seal ended the batch (every request it saw had ended and
		// its result was out): its final event is this call's to publish.
		// A repeated seal of a final batch publishes nothing.
		s.publishEvent(c, b.ID, lifecycle.BatchEventType(b.Status))
	}
	return NewBatchObject(b), nil
}

func (s *Service) batchGet(c *call) (any, error) {
	var p BatchParams
	if err := decode(c.data, s.cfg.MaxBody, &p); err != nil {
		return nil, err
	}
	if err := p.validate(); err != nil {
		return nil, err
	}
	b, err := s.store.Batch(c.ctx, p.ID)
	if err != nil {
		return nil, translate(err, batchNotFound(p.ID))
	}
	return NewBatchObject(b), nil
}

func (s *Service) batchList(c *call) (any, error) {
	var p ListParams
	if err := decode(c.data, s.cfg.MaxBody, &p); err != nil {
		return nil, err
	}
	q, err := p.query()
	if err != nil {
		return nil, err
	}
	page, err := s.store.ListBatches(c.ctx, q)
	if err != nil {
		return nil, translate(err, fmt.Sprintf("after: batch %q not found", q.After))
	}
	return NewBatchList(page), nil
}

func (s *Service) requestGet(c *call) (any, error) {
	var p RequestParams
	if err := decode(c.data, s.cfg.MaxBody, &p); err != nil {
		return nil, err
	}
	ref, err := p.ref()
	if err != nil {
		return nil, err
	}
	r, err := s.store.Request(c.ctx, ref)
	if err != nil {
		return nil, translate(err, requestNotFound(ref))
	}
	return NewRequestObject(r), nil
}

// requestCancel cancels one request: Redis first (the truth), then the
// control event that aborts its call if one is in flight, then the reply.
func (s *Service) requestCancel(c *call) (any, error) {
	var p RequestParams
	if err := decode(c.data, s.cfg.MaxBody, &p); err != nil {
		return nil, err
	}
	ref, err := p.ref()
	if err != nil {
		return nil, err
	}
	t, err := s.store.CancelRequest(c.ctx, ref)
	if err != nil {
		return nil, translate(err, requestNotFound(ref))
	}
	if t.State == lifecycle.StateCanceled {
		s.publishCancel(c, ref.BatchID, ref.ID)
	}
	r, err := s.store.Request(c.ctx, ref)
	if err != nil {
		return nil, translate(err, requestNotFound(ref))
	}
	return NewRequestObject(r), nil
}

// publishCancel sends the control event of a cancel already stored. Redis
// holds the truth and the event only makes in-flight aborts fast (a worker
// that misses it finds the cancel at its next store write), so a failed
// publish is logged and the cancel still succeeds.
func (s *Service) publishCancel(c *call, batchID, requestID string) {
	if err := s.events.PublishCancel(c.ctx, batchID, requestID); err != nil {
		c.log.Warn().Err(err).Str("batch", batchID).Str("request", requestID).
			Msg("cancel event not published; in-flight calls end at their next store write")
	}
}

func batchNotFound(id string) string {
	return fmt.Sprintf("id: batch %q not found", id)
}

func requestNotFound(ref lifecycle.Ref) string {
	if ref.BatchID == "" {
		return fmt.Sprintf("id: request %q not found (without batch_id only batchless requests are found)", ref.ID)
	}
	return fmt.Sprintf("id: request %q not found in batch %q", ref.ID, ref.BatchID)
}

// publishEvent publishes a batch event this call's move made due (the
// store set its outbox in the same move); a failure is logged and left to
// the sweep, which publishes what stays unpublished for batches.event_retry.
func (s *Service) publishEvent(c *call, batchID string, t lifecycle.BatchEventType) {
	if err := s.engine.PublishBatchEvent(c.ctx, batchID, t); err != nil {
		c.log.Warn().Err(err).Str("batch", batchID).Str("event", string(t)).
			Msg("batch event not published; the sweep publishes it")
	}
}
