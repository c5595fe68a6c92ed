package worker

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/salvo-run/salvo/pkg/lifecycle"
)

// The sweep makes every batch end, whatever happens to its messages. Every
// worker runs the loop; the one holding the Redis lock sweeps (a leader
// that dies is replaced when its lock expires, three intervals later). Per
// live batch (created and not yet final with its events out), each pass:
//
//   - publishes a created or final event left unpublished for
//     batches.event_retry (the creator or finalizer died, or NATS was down);
//   - at expires_at expires the batch (pending requests counted expired at
//     once), then ends its queued requests (EndQueued) and its in-flight
//     requests nobody holds any more; a cancelled batch gets the same;
//   - before expires_at ends in-flight requests whose lease ended more than
//     batches.stranded_after ago and whose message is gone (purged by hand,
//     dropped by a stream limit): failed message_lost;
//   - before expires_at, once the batch is inside the threshold of a model's
//     race-mode escalation, starts a racing copy of each of its in-flight
//     requests of that model (escalation.go);
//   - turns final a batch whose requests have all ended but whose results
//     have not all come within batches.finalize_grace and no message of
//     which is left in REQUESTS (the missing ones were lost before any
//     worker read them; results_missing says how many).

// sweepBatchesMax bounds the batches one pass looks at; the pass after
// goes on from where it stopped.
const sweepBatchesMax = 1000

// strandedMax bounds the stranded requests one pass ends per batch.
const strandedMax = 500

// sweepLoop runs the sweep every batches.sweep_interval while this worker
// holds the sweep's lock, until the worker stops.
func (w *Worker) sweepLoop() {
	interval := w.config().Batches.SweepInterval
	t := time.NewTicker(interval)
	defer t.Stop()
	s := &sweeper{w: w, draining: make(map[string]bool), lockTTL: sweepLockIntervals * interval}
	defer s.wait()
	leader := false
	for {
		select {
		case <-w.bg.Done():
			return
		case <-t.C:
		}
		held := s.hold()
		if !held {
			w.metrics.batches.notLeader()
		}
		if held != leader {
			leader = held
			w.log.Info().Bool("leader", held).Msg("sweep leadership changed")
		}
		if held {
			// A pass ends well inside the lock's lifetime, and renews the
			// lock as it goes, so two leaders never sweep at once; what it
			// does not reach, the next pass does (the cursor moves on).
			ctx, cancel := context.WithTimeout(w.bg, s.lockTTL-interval)
			s.pass(ctx)
			cancel()
		}
	}
}

// sweepLockIntervals is the sweep lock's lifetime in sweep intervals: a
// dead leader is replaced that long after its last renewal.
const sweepLockIntervals = 3

// hold takes or renews the sweep's lock; it reports whether this worker
// holds it.
func (s *sweeper) hold() bool {
	w := s.w
	ctx, cancel := w.opCtx()
	defer cancel()
	held, err := w.store.HoldSweepLock(ctx, w.ID(), s.lockTTL)
	if err != nil {
		w.log.Warn().Err(err).Msg("sweep lock unavailable")
	}
	if held {
		s.renewed = w.clock()
	}
	return held
}

// sweeper is the state of one worker's sweep: the EndQueued runs under way
// (one per batch at a time, off the sweep's pass).
type sweeper struct {
	w        *Worker
	mu       sync.Mutex
	draining map[string]bool
	wg       sync.WaitGroup

	lockTTL time.Duration
	renewed time.Time // when the lock was last taken or renewed
	// cursor is where the next pass starts in the live index, so that
	// every batch is reached however many there are.
	cursor int64
}

func (s *sweeper) wait() { s.wg.Wait() }

// pass sweeps the live batches once, and trims the list index of batches
// gone by retention.
func (s *sweeper) pass(ctx context.Context) {
	if _, err := s.w.store.TrimBatchIndex(ctx); err != nil {
		s.w.log.Warn().Err(err).Msg("sweep: trimming the batch index failed")
	}
	ids, err := s.w.store.LiveBatches(ctx, s.cursor, sweepBatchesMax)
	if err != nil {
		s.w.log.Warn().Err(err).Msg("sweep: listing live batches failed")
		return
	}
	if len(ids) < sweepBatchesMax {
		s.cursor = 0 // the end of the index: the next pass starts over
		defer s.w.metrics.batches.passDone()
	}
	for _, id := range ids {
		if ctx.Err() != nil {
			return
		}
		if s.w.clock().Sub(s.renewed) > s.lockTTL/sweepLockIntervals && !s.hold() {
			return // the lock went to another worker
		}
		if err := s.batch(ctx, id); err != nil && !errors.Is(err, context.DeadlineExceeded) {
			s.w.log.Warn().Err(err).Str("batch_id", id).Msg("sweep: batch left for the next pass")
		}
		if len(ids) == sweepBatchesMax {
			s.cursor++
		}
	}
}

// batch sweeps one live batch.
func (s *sweeper) batch(ctx context.Context, id string) error {
	w := s.w
	cfg := w.config().Batches
	log := w.log.With().Str("batch_id", id).Str("by", "sweep").Logger()
	b, err := w.store.Batch(ctx, id)
	if errors.Is(err, lifecycle.ErrNotFound) {
		return w.store.DropLive(ctx, id) // gone by retention
	}
	if err != nil {
		return err
	}
	if _, err := w.publishEvent(ctx, id, lifecycle.EventCreated, cfg.EventRetry); err != nil {
		log.Warn().Err(err).Msg("sweep: publishing the created event failed")
	}
	if b.Status.Terminal() {
		if _, err := w.publishEvent(ctx, id, lifecycle.BatchEventType(b.Status), cfg.EventRetry); err != nil {
			return err
		}
		out, err := w.store.BatchEventsOut(ctx, id)
		if err != nil || !out {
			return err
		}
		return w.store.DropLive(ctx, id)
	}
	now := w.clock()
	w.metrics.batches.seen(b, now)
	cancelled := !b.CancellingAt.IsZero()
	expired := !b.ExpiresAt.IsZero() && !now.Before(b.ExpiresAt)
	if expired && !cancelled {
		tr, err := w.store.ExpireBatch(ctx, id)
		if err != nil {
			return err
		}
		if tr.Applied {
			log.Info().Msg("batch expired")
		}
		if tr.Finalized != nil {
			w.batchFinalized(tr.Finalized, log)
		}
	}
	if expired || cancelled {
		s.drain(id)
	}
	if err := s.stranded(ctx, b, now, expired || cancelled, log); err != nil {
		return err
	}
	if !expired && !cancelled {
		if err := s.escalate(ctx, b, now, log); err != nil {
			return err
		}
	}
	if !b.FinalizingAt.IsZero() && now.Sub(b.FinalizingAt) >= cfg.FinalizeGrace {
		// Results still on their way are not missing: while REQUESTS holds
		// a message of the batch, a delivery or EndQueued publishes its
		// result, however long that takes under load.
		queued, err := w.hasQueued(ctx, id)
		if err != nil || queued {
			return err
		}
		final, err := w.store.FinishBatch(ctx, id)
		if err != nil {
			return err
		}
		if final != nil {
			log.Warn().Int64("results_missing", final.ResultsMissing).
				Msg("batch finalized without the results of requests whose messages were lost")
			w.batchFinal(*final, log)
		}
	}
	return nil
}

// hasQueued reports whether the REQUESTS stream still holds a message of
// the batch.
func (w *Worker) hasQueued(ctx context.Context, id string) (bool, error) {
	found := false
	_, err := w.queue.ScanBatch(ctx, id, func(Queued) bool {
		found = true
		return false
	})
	return found, err
}

// drain runs EndQueued for a batch that is over, unless one is running.
func (s *sweeper) drain(id string) {
	s.mu.Lock()
	if s.draining[id] {
		s.mu.Unlock()
		return
	}
	s.draining[id] = true
	s.mu.Unlock()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer func() {
			s.mu.Lock()
			delete(s.draining, id)
			s.mu.Unlock()
		}()
		_ = s.w.EndQueued(s.w.bg, id) // logs its own trouble; the next pass retries
	}()
}

// stranded ends the batch's in-flight requests that nobody will bring
// back: when the batch is over, every one whose lease has ended; before,
// those whose lease ended stranded_after ago and whose message is gone.
func (s *sweeper) stranded(ctx context.Context, b lifecycle.Batch, now time.Time, over bool, log zerolog.Logger) error {
	w := s.w
	before := now
	if !over {
		before = now.Add(-w.config().Batches.StrandedAfter)
	}
	entries, err := w.store.Stranded(ctx, b.ID, before, strandedMax)
	if err != nil {
		return err
	}
	for _, e := range entries {
		rec, err := w.store.Request(ctx, e.Ref)
		if err == nil && rec.State.Terminal() {
			// Ended by an earlier pass whose publish or mark failed: its
			// result is still due.
			if err := s.publishEnded(ctx, e.Ref, rec, log); err != nil {
				return err
			}
			continue
		}
		to, f := lifecycle.StateFailed, lifecycle.NewFailure(lifecycle.CodeMessageLost, 0,
			"the request's message left the stream while no worker held it (lease ended %s)", e.LeaseExpires.UTC().Format(time.RFC3339))
		switch {
		case !b.CancellingAt.IsZero():
			to, f = lifecycle.StateCanceled, lifecycle.NewFailure(lifecycle.CodeBatchCanceled, 0, "the batch was cancelled")
		case over:
			to, f = lifecycle.StateExpired, lifecycle.NewFailure(lifecycle.CodeBatchExpired, 0, "the batch expired before the request could finish")
		default:
			exists, err := w.queue.MessageExists(ctx, e.Seq)
			if err != nil {
				return err
			}
			if exists || e.Seq == 0 {
				continue // its redelivery will reclaim it
			}
		}
		if err := s.endStranded(ctx, e, before, to, f, log); err != nil {
			return err
		}
	}
	return nil
}

// endStranded ends one stranded request and publishes its result, built
// from its record.
func (s *sweeper) endStranded(ctx context.Context, e lifecycle.Stranded, before time.Time, to lifecycle.State, f *lifecycle.Failure, log zerolog.Logger) error {
	w := s.w
	tr, err := w.store.EndStranded(ctx, e.Ref, before, to, f)
	if errors.Is(err, lifecycle.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if tr.Finalized != nil {
		defer w.batchFinalized(tr.Finalized, log)
	}
	if !tr.Applied {
		return nil
	}
	rec, err := w.store.Request(ctx, e.Ref)
	if err != nil {
		return err
	}
	log.Info().Str("request_id", e.Ref.ID).Str("state", string(to)).Msg("stranded request ended")
	return s.publishEnded(ctx, e.Ref, rec, log)
}

// publishEnded publishes the result of a request the sweep ended, built
// from its record, to where the request asked, and marks it published
// (which takes it out of the lease index). Until then the next pass tries
// again.
func (s *sweeper) publishEnded(ctx context.Context, ref lifecycle.Ref, rec lifecycle.Record, log zerolog.Logger) error {
	w := s.w
	if !rec.Published {
		req := &lifecycle.Request{V: lifecycle.WireVersion, ID: ref.ID, BatchID: ref.BatchID,
			CustomID: rec.CustomID, Model: rec.Model, ResultSubject: rec.ResultSubject}
		res, data := w.resultFromEnded(req, rec.Ended())
		silent, err := w.silentEnd(ref, rec.State)
		if err == nil {
			err = w.publishLine(ctx, req, res, data, silent)
		}
		if err != nil {
			log.Warn().Err(err).Str("request_id", ref.ID).Msg("sweep: result of an ended request not published; next pass")
			return err
		}
	}
	return w.marks.mark(ctx, ref)
}

// escalate starts the racing copies of the batch's in-flight requests
// whose model has a race-mode escalation and whose deadline is inside its
// threshold (the requests queued get theirs at claim). The lease index
// names them; a request escalated already, or a copy, is passed over. The
// copy's message is built from the original's, read from REQUESTS.
func (s *sweeper) escalate(ctx context.Context, b lifecycle.Batch, now time.Time, log zerolog.Logger) error {
	w := s.w
	escs := w.config().Escalations
	var widest time.Duration
	for _, e := range escs {
		if e.Mode == EscalateRace {
			widest = max(widest, e.Threshold)
		}
	}
	if widest == 0 || b.ExpiresAt.IsZero() || b.ExpiresAt.Sub(now) >= widest {
		return nil
	}
	entries, err := w.store.Stranded(ctx, b.ID, now.Add(leaseHorizon), strandedMax)
	if err != nil {
		return err
	}
	for _, e := range entries {
		rec, err := w.store.Request(ctx, e.Ref)
		if err != nil || !rec.State.InFlight() || rec.EscalatedTo != "" || rec.EscalatedFrom != "" || e.Seq == 0 {
			continue
		}
		deadline := b.ExpiresAt
		if !rec.ExpiresAt.IsZero() && rec.ExpiresAt.Before(deadline) {
			deadline = rec.ExpiresAt
		}
		esc, ok := escs.near(rec.Model, deadline, now)
		if !ok || esc.Mode != EscalateRace {
			continue
		}
		rlog := log.With().Str("request_id", e.Ref.ID).Str("model", rec.Model).Logger()
		req, err := w.queue.RequestAt(ctx, e.Seq)
		if err != nil {
			rlog.Debug().Err(err).Msg("sweep: the request's message is not readable; no racing copy")
			continue
		}
		w.startCopy(ctx, req, esc.Model, rlog)
	}
	return nil
}

// leaseHorizon is later than any lease's expiry: Stranded before
// now+leaseHorizon lists every in-flight request of a batch.
const leaseHorizon = 24 * time.Hour
