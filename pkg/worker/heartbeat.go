package worker

import (
	"errors"
	"sync"
	"time"

	"github.com/salvo-run/salvo/pkg/lifecycle"
)

// heartbeat keeps every in-flight delivery alive, every HeartbeatInterval:
// a JetStream in-progress so AckWait does not redeliver it, and one
// pipelined lease refresh in Redis for all held requests. A request whose
// lease was lost while its call runs is aborted with ErrLeaseLost: its
// handler then writes nothing. A refresh that races the end of the call
// (the handler's own write ended the request) is not a lost lease and is
// neither logged nor acted on.
//
// The two run in separate loops so that a Redis stall (a refresh blocked
// for up to OpTimeout, longer than the short default AckWait) never holds
// back the in-progress messages: JetStream keeps the delivery here instead
// of redelivering it to a peer, whose claim would find the lease expired
// once Redis answers again and run the call a second time. A lease that
// expired during the stall is simply extended by the next refresh, since
// only a claim of a redelivered message takes an expired lease over.
func (w *Worker) heartbeat() {
	var leases sync.WaitGroup
	leases.Go(func() { w.everyHeartbeat(w.refreshLeases) })
	defer leases.Wait()
	w.everyHeartbeat(w.keepDeliveries)
}

// everyHeartbeat runs beat every HeartbeatInterval until the worker stops.
// Ticks that pass while beat runs are dropped, so a Redis stall costs the
// lease refresh one beat, not a backlog.
func (w *Worker) everyHeartbeat(beat func()) {
	t := time.NewTicker(w.config().HeartbeatInterval)
	defer t.Stop()
	for {
		select {
		case <-w.bg.Done():
			return
		case <-t.C:
			beat()
		}
	}
}

// keepDeliveries sends a JetStream in-progress for every in-flight delivery.
func (w *Worker) keepDeliveries() {
	tasks := w.tasks.all()
	if len(tasks) == 0 {
		return
	}
	ctx, cancel := w.opCtx()
	defer cancel()
	for _, t := range tasks {
		if err := t.d.InProgress(ctx); err != nil {
			w.log.Warn().Err(err).Str("request_id", t.req.ID).Msg("in-progress heartbeat failed")
		}
	}
}

// refreshLeases extends, in one pipeline, the lease of every held request,
// then the fleet-wide slots of this worker.
func (w *Worker) refreshLeases() {
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
		held, _ := t.snapshot()
		if held != nil {
			helds = append(helds, *held)
			heldTasks = append(heldTasks, t)
		}
		if model, slot := t.slotOf(); slot != "" {
			slots[model] = append(slots[model], slot)
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
				w.metrics.leaseLost(t.req.Model)
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
