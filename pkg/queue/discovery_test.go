package queue_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/salvo-run/salvo/internal/testnats"
	"github.com/salvo-run/salvo/pkg/queue"
	"github.com/salvo-run/salvo/pkg/transport"
)

// ackAll is a handler that records each request id and acks it.
func ackAll(seen *idSet) transport.Handler {
	return func(ctx context.Context, d transport.Delivery) {
		seen.add(d.Request().ID)
		_ = d.Ack(ctx)
	}
}

// A model announced by salvo's Publisher is fetched at once: with a
// discovery interval of an hour no listing happens after the one at
// Consume, so only the announcement can have started the model's loop.
func TestAnnouncedModelIsFetchedWithoutAListing(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *queue.Config) { c.DiscoveryInterval = time.Hour })
	seen := newIDSet()
	co := consume(t, b.c, queue.ConsumeOptions{Slots: newSlotTable(4).get, Handler: ackAll(seen)})
	require.Empty(t, co.Models())

	publishN(t, b.c, "a", "org/brand-new:model.v1", "b1", 3)
	waitFor(t, 10*time.Second, "three handled", func() bool { return seen.len() == 3 })
	require.Equal(t, []string{"org/brand-new:model.v1"}, co.Models())
	require.EqualValues(t, 1, co.Listings(), "a listing besides Consume's own")
	require.NoError(t, co.Healthy())
}

// A request a client publishes raw, without announcing its model, is found
// by the discovery leader's listing and handled.
func TestRawPublishedModelIsFoundByTheLeader(t *testing.T) {
	t.Parallel()
	b := setup(t)
	seen := newIDSet()
	co := consume(t, b.c, queue.ConsumeOptions{Slots: newSlotTable(4).get, Handler: ackAll(seen)})
	waitFor(t, eventually, "a leader", co.Leader)

	subj, err := b.c.RequestSubject("raw-model", "b1")
	require.NoError(t, err)
	b.publishRaw(t, subj, "b1.r-1", `{"v":1,"id":"r-1","batch_id":"b1","custom_id":"c","model":"raw-model",`+
		`"method":"POST","url":"/v1/chat/completions","body":{}}`)
	waitFor(t, eventually, "the raw request handled", func() bool { return seen.count("r-1") == 1 })
	require.Greater(t, co.Listings(), int64(1))
	require.Zero(t, streamMsgs(t, b.js, "SALVO_REQUESTS"))
}

// holdLeadership makes the test the discovery leader of b's server, so no
// consumer lists the models, until the test ends.
func holdLeadership(t *testing.T, b *bundle) {
	t.Helper()
	kv, err := b.js.KeyValue(ctx(t), "SALVO_DISCOVERY")
	require.NoError(t, err)
	rev, err := kv.Create(ctx(t), "leader", []byte("test"))
	require.NoError(t, err)
	hctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		tk := time.NewTicker(100 * time.Millisecond)
		defer tk.Stop()
		for {
			select {
			case <-hctx.Done():
				return
			case <-tk.C:
			}
			if r, err := kv.Update(hctx, "leader", []byte("test"), rev); err == nil {
				rev = r
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
}

// A fetch loop stopped for idleness is started again by the publisher's
// next announcement (due again after ModelIdleTimeout / 2) when new
// requests come: no consumer lists, the test holds the leadership.
func TestIdleStoppedLoopRestartsOnTheNextAnnouncement(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *queue.Config) { c.ModelIdleTimeout = 2 * time.Second })
	holdLeadership(t, b)
	seen := newIDSet()
	slots := newSlotTable(2)
	co := consume(t, b.c, queue.ConsumeOptions{Slots: slots.get, Handler: ackAll(seen)})

	publishN(t, b.c, "a", "m1", "b1", 5)
	waitFor(t, eventually, "five handled", func() bool { return seen.len() == 5 })
	waitFor(t, eventually, "the idle loop to stop", func() bool { return len(co.Models()) == 0 })
	require.Zero(t, slots.get("m1").InUse(), "slot leaked by the stopped loop")

	publishN(t, b.c, "c", "m1", "b1", 5)
	waitFor(t, eventually, "ten handled", func() bool { return seen.len() == 10 })
	require.True(t, slices.Contains(co.Models(), "m1"), "the announcement did not restart the loop")
	require.EqualValues(t, 1, co.Listings(), "a listing besides Consume's own")
	require.False(t, co.Leader())
	require.NoError(t, co.Healthy())
}

// Of several consumers of one fleet only the leader lists the models; the
// others stay healthy without listing. When the leader stops, another takes
// over and finds a raw-published model.
func TestOnlyTheLeaderListsTheModels(t *testing.T) {
	t.Parallel()
	b := setup(t)
	seen := newIDSet()
	var cos []*queue.Consumer
	for range 3 {
		c := newClient(t, b.srv.Connect(), b.cfg)
		cos = append(cos, consume(t, c, queue.ConsumeOptions{Slots: newSlotTable(4).get, Handler: ackAll(seen)}))
	}
	leaders := func() (n int, who *queue.Consumer) {
		for _, co := range cos {
			if co.Leader() {
				n++
				who = co
			}
		}
		return n, who
	}
	waitFor(t, eventually, "one leader", func() bool { n, _ := leaders(); return n == 1 })
	_, leader := leaders()
	before := leader.Listings()
	// For twenty discovery intervals the leader lists at each, the others
	// never again after Consume's own listing.
	holds(t, time.Second, 50*time.Millisecond, "one leader, the only one listing", func() bool {
		n, who := leaders()
		for _, co := range cos {
			if co != leader && co.Listings() != 1 {
				return false
			}
		}
		return n == 1 && who == leader
	})
	// Twenty intervals; a loaded machine delays some ticks.
	require.GreaterOrEqual(t, leader.Listings()-before, int64(5))
	for _, co := range cos {
		require.NoError(t, co.Healthy())
	}

	leader.Stop()
	waitFor(t, eventually, "a new leader", func() bool { n, who := leaders(); return n == 1 && who != leader })
	subj, err := b.c.RequestSubject("after-failover", "b1")
	require.NoError(t, err)
	b.publishRaw(t, subj, "b1.f-1", `{"v":1,"id":"f-1","batch_id":"b1","custom_id":"c","model":"after-failover",`+
		`"method":"POST","url":"/v1/chat/completions","body":{}}`)
	waitFor(t, eventually, "the raw request handled", func() bool { return seen.count("f-1") == 1 })
}

// A consumer that cannot take part in the election (the bucket is gone)
// lists the models itself, and recreates the bucket.
func TestBrokenElectionFallsBackToListing(t *testing.T) {
	t.Parallel()
	b := setup(t)
	seen := newIDSet()
	co := consume(t, b.c, queue.ConsumeOptions{Slots: newSlotTable(4).get, Handler: ackAll(seen)})
	waitFor(t, eventually, "a leader", co.Leader)
	require.NoError(t, b.js.DeleteKeyValue(ctx(t), "SALVO_DISCOVERY"))

	subj, err := b.c.RequestSubject("while-broken", "b1")
	require.NoError(t, err)
	b.publishRaw(t, subj, "b1.w-1", `{"v":1,"id":"w-1","batch_id":"b1","custom_id":"c","model":"while-broken",`+
		`"method":"POST","url":"/v1/chat/completions","body":{}}`)
	waitFor(t, eventually, "the raw request handled", func() bool { return seen.count("w-1") == 1 })
	waitFor(t, eventually, "the bucket recreated", func() bool {
		_, err := b.js.KeyValue(ctx(t), "SALVO_DISCOVERY")
		return !errors.Is(err, jetstream.ErrBucketNotFound)
	})
	publishN(t, b.c, "n", "announced-again", "b1", 2)
	waitFor(t, eventually, "the announced requests handled", func() bool { return seen.count("n-1") == 1 })
	waitFor(t, eventually, "healthy", func() bool { return co.Healthy() == nil })
}

// BenchmarkNewModelDispatch measures, per op, the time from publishing the
// first request of a model no consumer has seen (Publisher.Publish, which
// announces it) to its handler starting, on one consumer of an embedded
// server. The discovery interval is an hour, so only the announcement can
// start the model's loop. Reports p50 and p99 besides the mean.
func BenchmarkNewModelDispatch(b *testing.B) {
	srv := testnats.New(b)
	c, err := queue.New(srv.Connect(), queue.Config{DiscoveryInterval: time.Hour}, zerolog.Nop())
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute+time.Duration(b.N)*time.Second)
	defer cancel()
	if err := c.Provision(ctx); err != nil {
		b.Fatal(err)
	}
	started := make(chan time.Time, 1)
	cctx, stop := context.WithCancel(ctx)
	defer stop()
	co, err := c.Consume(cctx, queue.ConsumeOptions{Slots: newSlotTable(4).get,
		Handler: func(ctx context.Context, d transport.Delivery) {
			started <- time.Now()
			_ = d.Ack(ctx)
		}})
	if err != nil {
		b.Fatal(err)
	}
	defer func() { co.Stop(); stop(); _ = co.Wait(ctx); c.Close() }()
	p := c.NewPublisher()
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		t0 := time.Now()
		if err := p.Publish(ctx, newRequest("r-"+itoa(i), "new-model-"+itoa(i), "b1")); err != nil {
			b.Fatal(err)
		}
		select {
		case at := <-started:
			lat = append(lat, at.Sub(t0))
		case <-ctx.Done():
			b.Fatal("the request of a new model was not dispatched")
		}
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}
