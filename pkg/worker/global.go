package worker

import (
	"strconv"

	"github.com/rs/zerolog"
)

// acquireGlobal waits for a fleet-wide slot of model (the request's, or
// its escalation model's after route at claim). The task
// is already registered, so the heartbeat keeps its message alive meanwhile;
// waiting here (instead of nak'ing) spends no delivery and keeps the local
// slot, so the fetch loop does not take more than the fleet can run.
func (x *execution) acquireGlobal(model string, limit int) bool {
	w, req := x.w, x.req
	// Unique per delivery: a duplicate delivery of the same request on this
	// pod must not release this one's slot.
	holder := w.ID() + "/" + req.ID + "/" + strconv.FormatUint(w.slotSeq.Add(1), 36)
	cfg := w.config()
	polls := pollBackOff(x.ctx, cfg.GlobalSlotPoll)
	for {
		opCtx, cancel := w.opCtx()
		ok, err := w.store.AcquireModelSlot(opCtx, model, holder, limit, cfg.GlobalSlotTTL)
		cancel()
		if err != nil {
			x.logger().Warn().Err(err).Msg("fleet-wide slot request failed")
		}
		if ok {
			x.task.setSlot(model, holder)
			return true
		}
		if !pause(polls) {
			return false
		}
	}
}

// releaseGlobal gives the fleet-wide slot back, if one was taken.
func (x *execution) releaseGlobal(log zerolog.Logger) {
	model, holder := x.task.slotOf()
	if holder == "" {
		return
	}
	x.task.setSlot("", "")
	ctx, cancel := x.w.opCtx()
	defer cancel()
	if err := x.w.store.ReleaseModelSlot(ctx, model, holder); err != nil {
		log.Warn().Err(err).Msg("fleet-wide slot release failed; it expires by itself")
	}
}
