package queue

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
)

// modelLoop is the fetch loop of one model on this worker.
//
// The invariant it keeps: it never holds more fetched, unacked messages
// than its Slots has free. Before each pull it reserves k free slots and
// asks for at most k messages; each message arrives with its slot already
// taken and the unused reservations are returned when the pull ends. So no
// message waits in a client buffer while its AckWait runs, and a saturated
// model costs other models nothing (each has its own loop and consumer).
type modelLoop struct {
	co     *Consumer
	model  string
	token  string
	slots  *Slots
	health *loopHealth
	log    zerolog.Logger
}

// Reconnect back-off bounds of a failing fetch loop.
const (
	retryMin = 50 * time.Millisecond
	retryMax = 2 * time.Second
)

func (ml *modelLoop) run(ctx context.Context) {
	defer ml.co.loops.Done()
	cfg := ml.co.c.cfg
	var cons jetstream.Consumer
	wait := retryMin
	lastMsg := time.Now()
	fail := func(err error) bool {
		if ctx.Err() != nil {
			return false
		}
		ml.health.failed(err)
		ml.log.Warn().Err(err).Dur("retry_in", wait).Msg("fetch loop error; recreating the consumer")
		cons = nil // re-ensure: covers a deleted consumer and a server restart alike
		if !sleepCtx(ctx, wait) {
			return false
		}
		wait = min(wait*2, retryMax)
		return true
	}
	for ctx.Err() == nil {
		if cons == nil {
			var err error
			if cons, err = ml.co.c.ensureModelConsumer(ctx, ml.model, ml.token); err != nil {
				if !fail(err) {
					return
				}
				continue
			}
		}
		changed := ml.slots.Changed()
		k := ml.slots.TryAcquire(cfg.MaxFetchBatch)
		if k == 0 {
			// Saturated: healthy, just waiting for a handler to finish.
			ml.health.ok()
			select {
			case <-changed:
			case <-ctx.Done():
				return
			}
			continue
		}
		got, err := ml.fetch(ctx, cons, k)
		ml.slots.Release(k - got)
		if err != nil {
			if !fail(err) {
				return
			}
			continue
		}
		ml.health.ok()
		wait = retryMin
		if got > 0 {
			lastMsg = time.Now()
		} else if time.Since(lastMsg) >= cfg.ModelIdleTimeout && ml.stopIfIdle(ctx) {
			return
		}
	}
}

// stopIfIdle removes the loop from its consumer's models when the stream
// holds no message of the model, and reports whether it did; the loop then
// returns. It holds no reserved slot at this point, and a message published
// after the check makes the next discovery start a new loop.
func (ml *modelLoop) stopIfIdle(ctx context.Context) bool {
	co := ml.co
	filter := co.c.names.prefix + ".req." + ml.token + ".>"
	_, err := co.stream.GetMsg(ctx, 1, jetstream.WithGetMsgSubject(filter))
	if !errors.Is(err, jetstream.ErrMsgNotFound) {
		return false // messages waiting (a delayed nak) or the check failed: keep going
	}
	co.mu.Lock()
	defer co.mu.Unlock()
	if co.models[ml.token] == ml {
		delete(co.models, ml.token)
	}
	ml.log.Debug().Dur("idle", co.c.cfg.ModelIdleTimeout).Msg("fetch loop idle; stopped until messages appear")
	return true
}

// fetch runs one pull request for up to k messages and dispatches each as
// it arrives. It returns how many messages it dispatched (each took one of
// the k reserved slots).
func (ml *modelLoop) fetch(ctx context.Context, cons jetstream.Consumer, k int) (int, error) {
	cfg := ml.co.c.cfg
	fctx, cancel := context.WithTimeout(ctx, cfg.FetchExpiry)
	defer cancel()
	// Idle heartbeats detect a dead server or a deleted consumer within
	// 2×heartbeat instead of waiting for the pull to expire.
	batch, err := cons.Fetch(k, jetstream.FetchContext(fctx), jetstream.FetchHeartbeat(cfg.FetchExpiry/4))
	if err != nil {
		return 0, err
	}
	got := 0
	for msg := range batch.Messages() {
		got++
		ml.co.dispatch(ml, msg)
	}
	err = batch.Error()
	if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
		err = nil // our own pull deadline: an empty, successful poll
	}
	if ctx.Err() != nil {
		err = nil // stopping
	}
	return got, err
}

// ensureModelConsumer creates or updates the model's durable pull consumer.
func (c *Client) ensureModelConsumer(ctx context.Context, model, tok string) (jetstream.Consumer, error) {
	cfg := jetstream.ConsumerConfig{
		Durable:       consumerName(tok),
		Description:   "salvo requests for model " + model,
		FilterSubject: c.names.prefix + ".req." + tok + ".>",
		AckPolicy:     jetstream.AckExplicitPolicy,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckWait:       c.cfg.AckWait,
		MaxDeliver:    c.cfg.MaxDeliver,
		MaxAckPending: c.cfg.MaxAckPending,
		// Removes consumers of models nobody pulls for any more; a live
		// fetch loop always has a pull waiting (or unacked messages).
		InactiveThreshold: c.cfg.ModelInactiveThreshold,
	}
	cons, err := c.js.CreateOrUpdateConsumer(ctx, c.names.requests, cfg)
	if err != nil {
		return nil, err
	}
	return cons, nil
}

// sleepCtx sleeps for d or until ctx ends; it reports whether it slept.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
