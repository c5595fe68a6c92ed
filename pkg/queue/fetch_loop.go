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
	co      *Consumer
	model   string
	token   string
	slots   *Slots
	health  *loopHealth
	log     zerolog.Logger
	lastMsg time.Time // when a pull last brought a message; the loop's goroutine only
	// kicked is set (under co.mu) when discovery finds the running loop's
	// model announced or queued; it keeps the loop from stopping for
	// idleness in the turn that sees it.
	kicked bool
}

func (ml *modelLoop) run(ctx context.Context) {
	defer ml.co.loops.Done()
	ml.lastMsg = time.Now()
	l := pullLoop{
		health: ml.health,
		log:    ml.log,
		ensure: func(ctx context.Context) (jetstream.Consumer, error) {
			return ml.co.c.ensureModelConsumer(ctx, ml.model, ml.token)
		},
		pull: ml.pull,
	}
	l.run(ctx)
}

// pull reserves the free slots and fetches at most that many messages,
// dispatching each as it arrives. A saturated model waits for a slot, at
// most one FetchExpiry per turn so the loop stays healthy while it waits.
// After Config.ModelIdleTimeout without a message it stops the loop if the
// stream holds none of the model's.
func (ml *modelLoop) pull(ctx context.Context, cons jetstream.Consumer) error {
	cfg := ml.co.c.cfg
	changed := ml.slots.Changed()
	k := ml.slots.TryAcquire(cfg.MaxFetchBatch)
	if k == 0 {
		t := time.NewTimer(cfg.FetchExpiry)
		defer t.Stop()
		select {
		case <-changed:
		case <-t.C:
		case <-ctx.Done():
		}
		return nil
	}
	k = ml.gather(ctx, k)
	got, err := ml.co.c.pullOnce(ctx, cons, k, func(msg jetstream.Msg) { ml.co.dispatch(ml, msg) })
	ml.slots.Release(k - got)
	if err != nil {
		return err
	}
	if got > 0 {
		ml.lastMsg = time.Now()
	} else if time.Since(ml.lastMsg) >= cfg.ModelIdleTimeout && ml.stopIfIdle(ctx) {
		return errLoopDone
	}
	return nil
}

// A saturated model frees its slots one handler at a time, and a pull for
// each would cost a pull request, a subscription and its removal per
// message, on the worker and on the server alike. So when fewer than a
// gatherShare of the model's slots are free and handlers are running, the
// loop waits up to gatherWait for more to free up and pulls them together.
// A model with slots to spare (the usual case below saturation) pulls at
// once: the wait only ever delays messages that would have queued anyway.
const (
	gatherShare = 8
	gatherWait  = time.Millisecond
)

// gather grows a reservation of k slots towards the model's limit /
// gatherShare (at most MaxFetchBatch) while handlers holding slots may
// release them, for at most gatherWait, and returns the slots it holds.
func (ml *modelLoop) gather(ctx context.Context, k int) int {
	want := min(ml.co.c.cfg.MaxFetchBatch, max(1, ml.slots.Limit()/gatherShare))
	if k >= want {
		return k // with fewer, some handler holds a slot that will come back
	}
	t := time.NewTimer(gatherWait)
	defer t.Stop()
	for {
		changed := ml.slots.Changed()
		k += ml.slots.TryAcquire(want - k)
		if k >= want {
			return k
		}
		select {
		case <-changed:
		case <-t.C:
			return k
		case <-ctx.Done():
			return k
		}
	}
}

// stopIfIdle removes the loop from its consumer's models when the stream
// holds no message of the model, and reports whether it did; the loop then
// returns. It holds no reserved slot at this point. An announcement of the
// model between the check and the removal (a publisher about to publish)
// keeps the loop running; a message published after the removal is
// announced again by its publisher or found by the discovery leader, which
// start a new loop (discovery.go).
func (ml *modelLoop) stopIfIdle(ctx context.Context) bool {
	co := ml.co
	_, err := co.stream.GetMsg(ctx, 1, jetstream.WithGetMsgSubject(co.c.subj.modelRequests(ml.token)))
	if !errors.Is(err, jetstream.ErrMsgNotFound) {
		return false // messages waiting (a delayed nak) or the check failed: keep going
	}
	co.mu.Lock()
	defer co.mu.Unlock()
	if ml.kicked {
		// Announced since the last decision (during the last pull, or
		// the check above): its message may be on the way. The next idle
		// turn decides again.
		ml.kicked = false
		return false
	}
	if co.models[ml.token] == ml {
		delete(co.models, ml.token)
	}
	ml.log.Debug().Dur("idle", co.c.cfg.ModelIdleTimeout).Msg("fetch loop idle; stopped until messages appear")
	return true
}

// ensureModelConsumer returns the model's durable pull consumer, created
// with this worker's settings when it is missing. An existing consumer is
// used as it is, even when its settings differ from this worker's: it is
// shared by every worker, and a fetch loop must neither rewrite it nor stop
// fetching. The difference is logged once at warn; Provision, at start,
// is where a worker refuses it.
func (c *Client) ensureModelConsumer(ctx context.Context, model, tok string) (jetstream.Consumer, error) {
	want := c.modelConsumerConfig(model, tok)
	cons, err := c.js.Consumer(ctx, c.names.requests, want.Durable)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		cons, err = c.js.CreateConsumer(ctx, c.names.requests, want)
		if errors.Is(err, jetstream.ErrConsumerExists) {
			cons, err = c.js.Consumer(ctx, c.names.requests, want.Durable) // created meanwhile, with other settings
		}
	}
	if err != nil {
		return nil, err
	}
	for _, d := range diffs(consumerObject(c.names.requests, want.Durable), modelConsumerSettings, cons.CachedInfo().Config, want) {
		if _, seen := c.warned.LoadOrStore(d.String(), true); !seen {
			c.log.Warn().Str("consumer", want.Durable).Str("field", d.Field).Str("server", d.Server).Str("worker", d.Worker).
				Msg("model consumer has other settings than this worker; using it as it is (worker -apply-streams changes it)")
		}
	}
	return cons, nil
}

// modelConsumerConfig is the config this worker gives a model consumer.
func (c *Client) modelConsumerConfig(model, tok string) jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:       consumerName(tok),
		Description:   "salvo requests for model " + model,
		FilterSubject: c.subj.modelRequests(tok),
		AckPolicy:     jetstream.AckExplicitPolicy,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckWait:       c.cfg.AckWait,
		MaxDeliver:    int(c.maxDeliver.Load()),
		MaxAckPending: c.cfg.MaxAckPending,
		// Removes consumers of models nobody pulls for any more; a live
		// fetch loop always has a pull waiting (or unacked messages).
		InactiveThreshold: c.cfg.ModelInactiveThreshold,
	}
}
