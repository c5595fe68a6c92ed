package worker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/rs/zerolog"

	"github.com/salvo-run/salvo/pkg/lifecycle"
)

// Batch-level work of the engine: the hold of requests whose batch does
// not exist, the batch events (through their outbox in Redis), and ending
// the queued requests of a batch that is over (EndQueued).

// unknownBatchRetry is the longest wait between two looks for the batch of
// a held request.
const unknownBatchRetry = 2 * time.Second

// noBatch handles a request whose batch has no record: its message is held
// (redelivered later) until batches.unknown_hold has passed since it was
// stored, so a request published just before its batch.create still runs
// and counts; after that it ends failed batch_not_found with its result,
// counted nowhere.
func (x *execution) noBatch() {
	hold := x.w.config().Batches.UnknownHold
	waited := x.w.clock().Sub(x.d.Stored())
	if waited < hold {
		delay := min(unknownBatchRetry, hold-waited)
		x.logger().Info().Dur("waited", waited).Dur("hold", hold).Msg("the request's batch does not exist yet; holding the message")
		x.nak(delay)
		return
	}
	f := lifecycle.NewFailure(lifecycle.CodeBatchNotFound, 0,
		"batch %q does not exist: create it (batch.create) before publishing its requests; the request waited %s",
		x.req.BatchID, hold)
	res := x.w.buildResult(x.req, lifecycle.StateFailed, 0, time.Time{}, f, nil)
	ctx, cancel := x.w.opCtx()
	defer cancel()
	if err := x.w.endPoison(ctx, x.req, f, res, false, *x.logger()); err != nil {
		x.logger().Error().Err(err).Msg("ending a request of an unknown batch failed; redelivering later")
		x.nak(storeDownDelay)
		return
	}
	x.ack()
}

// batchEventTries bounds the immediate attempts to publish a batch event;
// the sweep takes over an event still unpublished after
// batches.event_retry.
const batchEventTries = 5

// batchFinalized follows a write that ended the batch's last request:
// once every result is out the batch is final and its event goes out (the
// marker's mark of the last result usually does that, see onFinal).
func (w *Worker) batchFinalized(b *lifecycle.Batch, log zerolog.Logger) {
	if !b.Status.Terminal() {
		log.Info().Str("status", string(b.Status)).Int64("total", b.Counts.Total).
			Msg("every request of the batch has ended; it turns final once its results are out")
		return
	}
	w.batchFinal(*b, log)
}

// onFinal is the marker's callback for a batch that turned final with the
// result it marked: its event goes out off the marker's goroutine.
func (w *Worker) onFinal(b lifecycle.Batch) {
	w.events.Add(1)
	go func() {
		defer w.events.Done()
		w.batchFinal(b, w.log.With().Str("batch_id", b.ID).Logger())
	}()
}

// batchFinal publishes the final event of a batch that turned final,
// retrying a few times; what still fails is left in the outbox for the
// sweep.
func (w *Worker) batchFinal(b lifecycle.Batch, log zerolog.Logger) {
	log.Info().Str("status", string(b.Status)).Int64("total", b.Counts.Total).
		Int64("completed", b.Counts.Completed).Int64("failed", b.Counts.Failed).
		Int64("results_missing", b.ResultsMissing).Msg("batch finalized")
	t := lifecycle.BatchEventType(b.Status)
	pauses := retryBackOff(w.bg, 4*redisPause)
	var err error
	for n := range batchEventTries {
		ctx, cancel := w.opCtx()
		var published bool
		published, err = w.publishOwn(ctx, b, t)
		cancel()
		// Once published, never again: a failed record leaves the event
		// to the sweep, whose copy the stream drops inside its window.
		if err == nil || published || n == batchEventTries-1 || !pause(pauses) {
			break
		}
	}
	if err != nil {
		log.Warn().Err(err).Str("event", string(t)).Msg("publishing the batch event failed; the sweep retries it")
	}
}

// PublishBatchEvent publishes an event the caller's own move made due: the
// batch API's created event of a batch it created, or the final event of a
// batch its seal or cancel ended. A failure leaves it to the sweep.
func (w *Worker) PublishBatchEvent(ctx context.Context, batchID string, t lifecycle.BatchEventType) error {
	b, err := w.store.Batch(ctx, batchID)
	if err != nil {
		return fmt.Errorf("worker: batch event %s %s: %w", batchID, t, err)
	}
	if t != lifecycle.EventCreated && lifecycle.BatchEventType(b.Status) != t {
		return fmt.Errorf("worker: batch event %s %s: the batch is %s", batchID, t, b.Status)
	}
	_, err = w.publishOwn(ctx, b, t)
	return err
}

// publishOwn publishes an event whose outbox the publisher's own move set
// (so no one else takes it before batches.event_retry) and records it
// published; it reports whether the event went out.
func (w *Worker) publishOwn(ctx context.Context, b lifecycle.Batch, t lifecycle.BatchEventType) (bool, error) {
	ev := lifecycle.BatchEvent{Type: t, Batch: b, At: w.clock().UTC()}
	if err := w.queue.PublishBatchEvent(ctx, ev); err != nil {
		return false, err
	}
	w.metrics.batchEvent(ctx, t)
	if err := w.store.BatchEventDone(ctx, b.ID, t); err != nil {
		return true, fmt.Errorf("worker: record batch event %s %s published: %w", b.ID, t, err)
	}
	return true, nil
}

// publishEvent is the sweep's: it takes the event from the batch's outbox
// when it is still unpublished batches.event_retry (stale) after it was
// set or last taken, publishes it and records it published. It reports
// whether it published. A publisher that dies between the publish and the
// record leaves the event to be published again after stale: inside the
// stream's duplicate window the stream keeps one (Nats-Msg-Id
// <batch>:<type>).
func (w *Worker) publishEvent(ctx context.Context, batchID string, t lifecycle.BatchEventType, stale time.Duration) (bool, error) {
	b, err := w.store.ClaimBatchEvent(ctx, batchID, t, stale)
	if err != nil || b == nil {
		return false, err
	}
	return w.publishOwn(ctx, *b, t)
}

// endQueuedWorkers bounds the queued requests EndQueued ends at once.
const endQueuedWorkers = 16

// errBatchLive stops EndQueued on a batch that is not over.
var errBatchLive = errors.New("worker: the batch is not cancelled or expired")

// EndQueued ends the queued requests of a batch that is over (cancelled or
// expired): each message of the batch still in the REQUESTS stream is
// claimed, which ends its request (canceled or expired) in Redis; the
// result is published and marked, and then the messages are removed — the
// ones below the first that is left to the consumers with one purge, the
// others one by one. A message is left to the consumers when it is not a
// valid request (their poison path reports it), when a worker holds its
// request (that worker ends it), or when its request ended but its result
// is not out yet (the delivery that ends it publishes it). It returns
// after one pass; the sweep calls it again while the batch is not final.
func (w *Worker) EndQueued(ctx context.Context, batchID string) error {
	log := w.log.With().Str("batch_id", batchID).Logger()
	type done struct {
		seq      uint64
		resolved bool
		err      error
	}
	results := make(chan done, endQueuedWorkers)
	sem := make(chan struct{}, endQueuedWorkers)
	var resolved []uint64
	firstLeft := uint64(0)
	var firstErr error
	collect := func(d done) {
		switch {
		case d.resolved:
			resolved = append(resolved, d.seq)
		case firstLeft == 0 || d.seq < firstLeft:
			firstLeft = d.seq
		}
		if d.err != nil && firstErr == nil {
			firstErr = d.err
		}
	}
	inFlight := 0
	last, scanErr := w.queue.ScanBatch(ctx, batchID, func(q Queued) bool {
		for inFlight == endQueuedWorkers {
			collect(<-results)
			inFlight--
		}
		if q.Err != nil || q.Request == nil || q.Request.BatchID != batchID {
			collect(done{seq: q.Seq})
			return true
		}
		sem <- struct{}{}
		inFlight++
		go func() {
			defer func() { <-sem }()
			ok, err := w.endQueued(ctx, q)
			results <- done{seq: q.Seq, resolved: ok, err: err}
		}()
		return firstErr == nil && ctx.Err() == nil
	})
	for ; inFlight > 0; inFlight-- {
		collect(<-results)
	}
	if err := errors.Join(scanErr, firstErr); err != nil && !errors.Is(err, errBatchLive) {
		log.Warn().Err(err).Msg("ending the batch's queued requests stopped early; the sweep goes on later")
	}
	if last == 0 {
		return errors.Join(scanErr, firstErr)
	}
	before := last + 1
	if firstLeft != 0 {
		before = firstLeft
	}
	purged, err := w.queue.PurgeBatch(ctx, batchID, before)
	if err != nil {
		return errors.Join(scanErr, firstErr, err)
	}
	deleted := 0
	for _, seq := range resolved {
		if seq < before {
			continue
		}
		if err := w.queue.DeleteRequest(ctx, seq); err != nil {
			return errors.Join(scanErr, firstErr, err)
		}
		deleted++
	}
	log.Info().Int("resolved", len(resolved)).Uint64("purged", purged).Int("deleted", deleted).
		Msg("queued requests of the batch ended and their messages removed")
	return errors.Join(scanErr, firstErr)
}

// endQueued ends one queued request of a batch that is over and publishes
// its result; it reports whether the message can go (the result is out).
func (w *Worker) endQueued(ctx context.Context, q Queued) (bool, error) {
	log := w.log.With().Str("request_id", q.Request.ID).Str("batch_id", q.Request.BatchID).Logger()
	opCtx, cancel := w.opCtx()
	claim, err := w.store.Claim(opCtx, lifecycle.ClaimArgs{Request: q.Request, Owner: w.ID(), Seq: q.Seq})
	cancel()
	switch {
	case errors.Is(err, lifecycle.ErrLeaseHeld):
		return false, nil // its holder ends it
	case err != nil:
		return false, err
	case claim.Held != nil:
		// Not over after all: give it back untouched.
		rctx, rcancel := w.opCtx()
		_, rerr := w.store.Release(rctx, *claim.Held, false)
		rcancel()
		return false, errors.Join(errBatchLive, rerr)
	}
	e := claim.Ended
	if e.Finalized != nil {
		w.batchFinalized(e.Finalized, log)
	}
	if e.Published {
		return true, nil
	}
	if !e.JustEnded {
		return false, nil // ended by a delivery that publishes its result
	}
	res, data := w.resultFromEnded(q.Request, e)
	pctx, pcancel := w.opCtx()
	defer pcancel()
	silent, err := w.silentEnd(q.Request.Ref(), e.State)
	if err != nil {
		return false, fmt.Errorf("worker: queued %s: %w", q.Request.ID, err)
	}
	if err := w.publishLine(pctx, q.Request, res, data, silent); err != nil {
		return false, fmt.Errorf("worker: queued %s: %w", q.Request.ID, err)
	}
	if err := w.marks.mark(pctx, q.Request.Ref()); err != nil {
		return false, fmt.Errorf("worker: mark result of queued %s: %w", q.Request.ID, err)
	}
	return true, nil
}
