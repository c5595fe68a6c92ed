package worker

import (
	"context"
	"strconv"
	"time"

	"github.com/rs/zerolog"
)

// acquireGlobal waits for a fleet-wide slot of the task's model. The task is
// already registered, so the heartbeat keeps its message alive meanwhile;
// waiting here (instead of nak'ing) spends no delivery and keeps the local
// slot, so the fetch loop does not take more than the fleet can run.
func (w *Worker) acquireGlobal(ctx context.Context, t *task, limit int, log zerolog.Logger) bool {
	// Unique per delivery: a duplicate delivery of the same request on this
	// pod must not release this one's slot.
	holder := w.ID() + "/" + t.req.ID + "/" + strconv.FormatUint(w.slotSeq.Add(1), 36)
	cfg := w.config()
	for {
		opCtx, cancel := w.opCtx()
		ok, err := w.store.AcquireModelSlot(opCtx, t.req.Model, holder, limit, cfg.GlobalSlotTTL)
		cancel()
		if err != nil {
			log.Warn().Err(err).Msg("fleet-wide slot request failed")
		}
		if ok {
			t.setSlot(holder)
			return true
		}
		wait := time.Duration(float64(cfg.GlobalSlotPoll) * (0.5 + w.jitter()))
		select {
		case <-ctx.Done():
			return false
		case <-time.After(wait):
		}
	}
}

func (w *Worker) releaseGlobal(t *task, log zerolog.Logger) {
	_, holder := t.snapshot()
	if holder == "" {
		return
	}
	ctx, cancel := w.opCtx()
	defer cancel()
	if err := w.store.ReleaseModelSlot(ctx, t.req.Model, holder); err != nil {
		log.Warn().Err(err).Msg("fleet-wide slot release failed; it expires by itself")
	}
}
