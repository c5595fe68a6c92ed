package queue

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/salvo-run/salvo/pkg/lifecycle"
)

// Model discovery: how the consumers of a fleet learn that a model has
// queued messages, so one of them starts the model's fetch loop.
//
//   - Announcements (the fast path). The KV bucket <P>_DISCOVERY holds a
//     key model.<token> per announced model. Every consumer watches those
//     keys (new puts only) and starts the fetch loop of each model it
//     routes as soon as its key is put. salvo's publishers put the key
//     before the first request of a model they publish (announce.go), so
//     the first request of a model no worker has seen is fetched within
//     milliseconds. Nothing is added per request: the announcement is one
//     message per model per publishing process (and ModelIdleTimeout / 2).
//   - The listing (the safety net, once per fleet). One consumer, the
//     discovery leader, lists the subjects of REQUESTS every
//     DiscoveryInterval, as every consumer did before announcements: it
//     starts the loops of the models it routes, rejects junk and unrouted
//     messages, and puts the key of every model with queued messages whose
//     consumer is missing or has no pull request waiting — a model a raw
//     client published without announcing it, or one whose loops all
//     stopped — so every worker that routes it starts its loop. A queued
//     message therefore waits at most about one DiscoveryInterval for a
//     fetch loop, however it was published.
//   - The leader holds the key "leader" in the same bucket. Every consumer
//     takes a turn every DiscoveryInterval: the leader renews the key
//     (compare-and-set on its revision), the others try to create it. The
//     bucket's TTL (leaseIntervals × DiscoveryInterval, at least leaseMin)
//     is the lease: a leader that dies is replaced once its key expires; one
//     that stops deletes the key, so the next turn of another consumer
//     takes over. A consumer whose turn fails lists itself, as every
//     consumer did before: a broken election costs listings, never a
//     stranded message.
//   - Every consumer lists once when it starts (Consume), so a new worker
//     joins the models that have queued messages at once.
//
// Announcements only start loops; a loop still stops itself after
// ModelIdleTimeout when the stream holds none of its model's messages
// (fetch_loop.go). An announcement that reaches a loop while it decides to
// stop keeps it running (modelLoop.kicked).

// The leader's lease: the DISCOVERY bucket's TTL is leaseIntervals
// discovery intervals, at least leaseMin.
const (
	leaseIntervals = 3
	leaseMin       = time.Second
)

// electTimeout bounds one election turn: a bucket that does not answer
// (deleted, its stream leaderless) must not hold up the listing that
// replaces the election.
const electTimeout = 2 * time.Second

// Bounds of the DISCOVERY bucket: its keys expire with the lease, so it
// holds only the models announced within the last lease.
const (
	discoveryMaxBytes = 8 << 20 // 8 MiB
	discoveryMaxValue = 1 << 10 // a model name
)

// discoveryConfig is the DISCOVERY bucket this worker creates when it is
// missing. Its TTL is fixed by the worker that creates it.
func (c *Client) discoveryConfig() jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket:       c.names.discovery,
		Description:  "salvo: model announcements (model.<token>) and the discovery leader's lease (leader)",
		History:      1,
		TTL:          max(leaseIntervals*c.cfg.DiscoveryInterval, leaseMin),
		MaxBytes:     discoveryMaxBytes,
		MaxValueSize: discoveryMaxValue,
		Storage:      c.cfg.Storage.jetstream(),
		Replicas:     c.cfg.Replicas,
	}
}

// ensureDiscovery opens the DISCOVERY bucket, creating it when missing.
func (c *Client) ensureDiscovery(ctx context.Context) (jetstream.KeyValue, error) {
	want := c.discoveryConfig()
	kv, err := c.js.KeyValue(ctx, want.Bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		kv, err = c.js.CreateKeyValue(ctx, want)
		if errors.Is(err, jetstream.ErrBucketExists) {
			kv, err = c.js.KeyValue(ctx, want.Bucket) // created meanwhile by another worker
		}
	}
	if err != nil {
		return nil, fmt.Errorf("queue: key-value bucket %s: %w", want.Bucket, err)
	}
	return kv, nil
}

// startDiscovery opens the bucket, starts watching announcements and then
// lists the models once, so nothing announced in between is missed.
func (co *Consumer) startDiscovery(ctx context.Context) (jetstream.KeyWatcher, error) {
	kv, err := co.c.ensureDiscovery(ctx)
	if err != nil {
		return nil, fmt.Errorf("queue: consume: %w", err)
	}
	co.kv = kv
	co.id = newConsumerID()
	w, err := kv.Watch(ctx, allModelKeys, jetstream.UpdatesOnly())
	if err != nil {
		return nil, fmt.Errorf("queue: consume: watch %s: %w", co.c.names.discovery, err)
	}
	co.listings.Add(1)
	if err := co.discover(ctx, false); err != nil {
		_ = w.Stop()
		return nil, err
	}
	return w, nil
}

// newConsumerID names a consumer in the leader election.
func newConsumerID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return hex.EncodeToString(b)
}

// watchLoop starts the fetch loop of every announced model this worker
// routes. A watch that ends before the consumer stops is started again
// with back-off; what was announced meanwhile the leader's listing finds.
func (co *Consumer) watchLoop(w jetstream.KeyWatcher) {
	defer co.loops.Done()
	ctx := co.fetchCtx
	b := backoff.WithContext(newBackOff(retryMin, retryMax), ctx)
	for {
		if w != nil {
			co.watchDown.Store(0)
			b.Reset()
			for e := range w.Updates() {
				co.announced(e)
			}
			_ = w.Stop()
		}
		if ctx.Err() != nil {
			return
		}
		co.watchDown.CompareAndSwap(0, time.Now().UnixNano())
		t := time.NewTimer(b.NextBackOff())
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		var err error
		if w, err = co.kv.Watch(ctx, allModelKeys, jetstream.UpdatesOnly()); err != nil {
			co.log.Warn().Err(err).Msg("watching model announcements failed; retrying")
			w = nil
		}
	}
}

// announced handles one watched entry: a put of a model key starts the
// model's fetch loop when this worker routes it.
func (co *Consumer) announced(e jetstream.KeyValueEntry) {
	if e == nil || e.Operation() != jetstream.KeyValuePut {
		return
	}
	tok, model, ok := co.c.subj.parseModelKey(e.Key())
	if !ok {
		return
	}
	if co.o.Routable != nil && !co.o.Routable(model) {
		return
	}
	co.startModel(tok)
}

// discoveryLoop takes this consumer's turn in the leader election every
// DiscoveryInterval and lists the models while it leads.
func (co *Consumer) discoveryLoop() {
	defer co.loops.Done()
	defer co.resign()
	t := time.NewTicker(co.c.cfg.DiscoveryInterval)
	defer t.Stop()
	for {
		select {
		case <-co.fetchCtx.Done():
			return
		case <-t.C:
		}
		co.discoveryTurn(co.fetchCtx)
	}
}

// discoveryTurn renews or seeks the leadership and lists the models when
// this consumer leads — or when the election itself failed.
func (co *Consumer) discoveryTurn(ctx context.Context) {
	ectx, cancel := context.WithTimeout(ctx, electTimeout)
	leader, err := co.elect(ectx)
	cancel()
	// A worker whose announcement watch is down hears of no model: it
	// lists for itself until the watch is back.
	list := leader || co.watchDown.Load() != 0
	if err != nil {
		if ctx.Err() != nil {
			return
		}
		co.log.Warn().Err(err).Msg("discovery leader election failed; listing models on this worker")
		if errors.Is(err, jetstream.ErrBucketNotFound) || errors.Is(err, jetstream.ErrStreamNotFound) ||
			errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrNoStreamResponse) {
			if _, err := co.c.ensureDiscovery(ctx); err != nil {
				co.log.Warn().Err(err).Msg("recreating the discovery bucket failed")
			}
		}
		list = true
	}
	if was := co.leader.Swap(leader); was != leader {
		co.log.Info().Bool("leader", leader).Msg("model discovery leadership changed")
	}
	if !list {
		co.discoveredAt.Store(time.Now().UnixNano())
		return
	}
	co.listings.Add(1)
	if err := co.discover(ctx, true); err != nil && ctx.Err() == nil {
		co.log.Warn().Err(err).Msg("model discovery failed")
	}
}

// elect renews this consumer's lease on the leader key, or takes the key
// when nobody holds it, and reports whether this consumer leads.
func (co *Consumer) elect(ctx context.Context) (bool, error) {
	if co.leaderRev != 0 {
		rev, err := co.kv.Update(ctx, leaderKey, []byte(co.id), co.leaderRev)
		if err == nil {
			co.leaderRev = rev
			return true, nil
		}
		if !errors.Is(err, jetstream.ErrKeyRevisionMismatch) && !errors.Is(err, jetstream.ErrKeyExists) {
			return true, fmt.Errorf("queue: renew discovery leadership: %w", err)
		}
		co.leaderRev = 0 // the lease expired; another consumer may hold it now
	}
	rev, err := co.kv.Create(ctx, leaderKey, []byte(co.id))
	switch {
	case err == nil:
		co.leaderRev = rev
		return true, nil
	case errors.Is(err, jetstream.ErrKeyExists):
		return false, nil
	default:
		return false, fmt.Errorf("queue: seek discovery leadership: %w", err)
	}
}

// resign deletes the leader key this consumer holds, so another consumer
// takes over at its next turn instead of after the lease.
func (co *Consumer) resign() {
	if co.leaderRev == 0 {
		return
	}
	// Deliberate detached cleanup: the consumer's context has ended.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(co.fetchCtx), 2*time.Second)
	defer cancel()
	if err := co.kv.Delete(ctx, leaderKey, jetstream.LastRevision(co.leaderRev)); err != nil {
		co.log.Debug().Err(err).Msg("discovery leadership not released; it expires with its lease")
	}
	co.leaderRev = 0
	co.leader.Store(false)
}

// discover lists the subjects of the REQUESTS stream: it starts a fetch
// loop for every model token with messages that has none and that this
// worker can route, rejects the messages on subjects no model consumer
// fetches (junk.go), and reports those of models no worker routes
// (unrouted.go). With fleet set (the leader's listing) it also announces
// every model with messages that no consumer is pulling, so the workers
// that route it start their loops.
func (co *Consumer) discover(ctx context.Context, fleet bool) error {
	info, err := co.stream.Info(ctx, jetstream.WithSubjectFilter(co.c.subj.allRequests()))
	if err != nil {
		return fmt.Errorf("queue: discover models in %s: %w", co.c.names.requests, err)
	}
	co.discoveredAt.Store(time.Now().UnixNano())
	var junk, unrouted []string
	queued := map[string]string{} // model token → model
	for subj := range info.State.Subjects {
		r, _ := co.c.subj.parseRequest(subj)
		switch {
		case !r.fetched():
			junk = append(junk, subj)
		case co.o.Routable != nil && !co.o.Routable(r.model):
			queued[r.modelToken] = r.model
			unrouted = append(unrouted, subj)
		default:
			queued[r.modelToken] = r.model
			co.startModel(r.modelToken)
		}
	}
	if fleet {
		put, err := co.announceUnserved(ctx, queued)
		if err != nil && ctx.Err() == nil {
			co.log.Warn().Err(err).Msg("announcing queued models: retrying at the next discovery")
		}
		unrouted = co.afterAnnouncing(put, queued, unrouted, time.Now())
	}
	if len(junk) > 0 {
		if err := co.rejectJunk(ctx, junk); err != nil && ctx.Err() == nil {
			co.log.Warn().Err(err).Msg("junk request subjects: retrying at the next discovery")
		}
	}
	if len(unrouted) > 0 {
		if err := co.rejectUnrouted(ctx, unrouted, time.Now()); err != nil && ctx.Err() == nil {
			co.log.Warn().Err(err).Msg("unrouted request subjects: retrying at the next discovery")
		}
	}
	return nil
}

// afterAnnouncing records when each model of put (tokens) was first
// announced, forgets the models no longer queued, and returns the
// unrouted subjects without those of models announced within the unrouted
// grace: a worker that routes such a model may be creating its consumer
// right now, and rejecting its messages then would throw away work it is
// about to take. A model that still has no consumer a grace after its
// first announcement is rejected as before.
func (co *Consumer) afterAnnouncing(put []string, queued map[string]string, unrouted []string, now time.Time) []string {
	if co.announcedAt == nil {
		co.announcedAt = map[string]time.Time{}
	}
	for _, tok := range put {
		if _, ok := co.announcedAt[tok]; !ok {
			co.announcedAt[tok] = now
		}
	}
	for tok := range co.announcedAt {
		if _, ok := queued[tok]; !ok {
			delete(co.announcedAt, tok)
		}
	}
	grace := unroutedGraceIntervals * co.c.cfg.DiscoveryInterval
	kept := unrouted[:0]
	for _, subj := range unrouted {
		r, _ := co.c.subj.parseRequest(subj)
		if at, ok := co.announcedAt[r.modelToken]; ok && now.Sub(at) < grace {
			continue
		}
		kept = append(kept, subj)
	}
	return kept
}

// announceUnserved puts the key of every model in queued (token → model)
// whose consumer is missing or has no pull request waiting: nobody fetches
// it, or every worker that does is saturated (then the put is harmless).
// It returns the tokens it put. One consumer listing per call, whatever
// the number of models.
func (co *Consumer) announceUnserved(ctx context.Context, queued map[string]string) ([]string, error) {
	if len(queued) == 0 {
		return nil, nil
	}
	waiting := make(map[string]int, len(queued))
	l := co.stream.ListConsumers(ctx)
	for info := range l.Info() {
		waiting[info.Name] = info.NumWaiting
	}
	if err := l.Err(); err != nil {
		return nil, fmt.Errorf("queue: list consumers of %s: %w", co.c.names.requests, err)
	}
	var (
		put  []string
		errs []error
	)
	for tok, model := range queued {
		if n, ok := waiting[consumerName(tok)]; ok && n > 0 {
			continue
		}
		if err := co.putModelKey(ctx, tok, model); err != nil {
			errs = append(errs, fmt.Errorf("queue: announce model %q: %w", model, err))
			continue
		}
		put = append(put, tok)
	}
	return put, errors.Join(errs...)
}

// startModel starts the fetch loop of a model token unless it runs; a
// running loop is kicked, so it does not stop for idleness right now.
func (co *Consumer) startModel(tok string) {
	co.mu.Lock()
	defer co.mu.Unlock()
	if co.stopped {
		return
	}
	if ml := co.models[tok]; ml != nil {
		ml.kicked = true
		return
	}
	model, err := lifecycle.DecodeToken(tok)
	if err != nil {
		// Unreachable: discovery starts only loops of tokens that decode.
		co.log.Error().Err(err).Msg("no fetch loop for an invalid model token")
		return
	}
	slots := co.o.Slots(model)
	ml := &modelLoop{co: co, model: model, token: tok, slots: slots, health: newLoopHealth(),
		log: co.log.With().Str("model", model).Logger()}
	co.models[tok] = ml
	co.loops.Add(1)
	go ml.run(co.fetchCtx)
}

// Leader reports whether this consumer is the discovery leader now. No
// production caller yet: the observability issue exports it; tests read it.
func (co *Consumer) Leader() bool { return co.leader.Load() }

// Listings counts the listings of the REQUESTS subjects this consumer has
// done: one at Consume, then one per DiscoveryInterval while it leads. No
// production caller yet: the observability issue exports it; tests read it.
func (co *Consumer) Listings() int64 { return co.listings.Load() }
