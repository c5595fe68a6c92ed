package worker

import (
	"errors"
	"time"

	"github.com/salvo-run/salvo/pkg/lifecycle"
)

// heartbeat keeps every in-flight delivery alive: a JetStream in-progress so
// AckWait does not redeliver it, and one pipelined lease refresh in Redis for
// all held requests. A request whose lease was lost while its call runs is
// aborted with ErrLeaseLost: its handler then writes nothing. A refresh
// that races the end of the call (the handler's own write ended the
// request) is not a lost lease and is neither logged nor acted on.
func (w *Worker) heartbeat() {
	t := time.NewTicker(w.config().HeartbeatInterval)
	defer t.Stop()
	for {
		select {
		case <-w.bg.Done():
			return
		case <-t.C:
			w.beat()
		}
	}
}

func (w *Worker) beat() {
	tasks := w.tasks.all()
	if len(tasks) == 0 {
		return
	}
	ctx, cancel := w.opCtx()
	defer cancel()
	var (
		helds     []lifecycle.Held
		heldTasks []*task
		slots     = map[string][]string{}
	)
	for _, t := range tasks {
		if err := t.d.InProgress(ctx); err != nil {
			w.log.Warn().Err(err).Str("request_id", t.req.ID).Msg("in-progress heartbeat failed")
		}
		held, slot := t.snapshot()
		if held != nil {
			helds = append(helds, *held)
			heldTasks = append(heldTasks, t)
		}
		if slot != "" {
			slots[t.req.Model] = append(slots[t.req.Model], slot)
		}
	}
	if len(helds) > 0 {
		errs := w.store.Refresh(ctx, helds)
		for i, err := range errs {
			if err == nil {
				continue
			}
			t := heldTasks[i]
			if errors.Is(err, lifecycle.ErrLeaseLost) {
				// The snapshot may be older than the task: a call that
				// ended meanwhile (its own write ended the request, or its
				// delivery settled) lost nothing.
				if !w.tasks.has(t) || !t.leaseLost(helds[i]) {
					continue
				}
				w.log.Warn().Str("request_id", t.req.ID).Str("batch_id", t.req.BatchID).
					Str("model", t.req.Model).Int("attempt", helds[i].Attempt).Msg("lease lost, aborting call")
				t.cancel(ErrLeaseLost)
				continue
			}
			w.log.Warn().Err(err).Str("request_id", t.req.ID).Msg("lease refresh failed")
		}
	}
	ttl := w.config().GlobalSlotTTL
	for model, holders := range slots {
		if err := w.store.RefreshModelSlots(ctx, model, holders, ttl); err != nil {
			w.log.Warn().Err(err).Str("model", model).Msg("fleet-wide slot refresh failed")
		}
	}
}
