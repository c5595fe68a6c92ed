package worker_test

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/salvo-run/salvo/internal/mockupstream"
	"github.com/salvo-run/salvo/internal/testbin"
	"github.com/salvo-run/salvo/pkg/lifecycle"
)

// Three worker processes race to finish several batches at once: six that
// complete (their requests interleaved, so their last results land on
// different workers at about the same time), two cancelled over the API
// mid-run (the cancel's drain on one worker, the sweep's on the leader,
// the consumers on all three), and one that expires against a model that
// never answers (its calls cut on every worker, the sweep ends the rest).
// Each batch gets exactly one created event and exactly one terminal
// event, of its final status — counted on a core NATS subscription on
// <p>.evt.batch.>, which sees a repeated publish the stream's duplicate
// window would drop.
func TestThreeWorkersPublishEachBatchEventExactlyOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("child processes")
	}
	// Not parallel: three worker processes at full load.
	const (
		perBatch = 150
		stuck    = "m-stuck"
	)
	testbin.Worker(t)
	e := newEnv(t, envOpts{mock: mockupstream.Options{
		Seed:   5,
		Script: mockupstream.Script{Latency: &mockupstream.Latency{Min: 20 * time.Millisecond, Max: 80 * time.Millisecond}},
		Models: map[string]mockupstream.Script{stuck: {Latency: &mockupstream.Latency{Min: time.Hour}}},
	}})
	for range 3 {
		e.startChild(t, childOpts{concurrent: 16, extra: sweepFast})
	}
	a := e.apiClient()
	a.waitServed(t)
	events := e.countEvents(t, "")

	var completing, cancelling []string
	var all []*lifecycle.Request
	for i := range 8 {
		id := fmt.Sprintf("b-race-%d", i)
		a.create(t, id, perBatch, "1h")
		all = append(all, batchRequests(id, "gpt-4o", perBatch, time.Time{})...)
		if i < 6 {
			completing = append(completing, id)
		} else {
			cancelling = append(cancelling, id)
		}
	}
	const expiring = "b-race-expire"
	a.create(t, expiring, 40, "2s")
	all = append(all, batchRequests(expiring, stuck, 40, time.Time{})...)
	rand.New(rand.NewPCG(5, 6)).Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
	e.publish(t, all)

	waitFor(t, 30*time.Second, "the batches under way", func() bool {
		return e.resultCount(t, cancelling[0]) >= perBatch/5 && e.resultCount(t, cancelling[1]) >= perBatch/5
	})
	for _, id := range cancelling {
		b := a.cancel(t, id)
		require.Contains(t, []string{string(lifecycle.BatchCancelling), string(lifecycle.BatchCancelled)}, b.Status,
			"%s was cancelled mid-run", id)
	}

	want := map[string]lifecycle.BatchEventType{expiring: lifecycle.EventExpired}
	for _, id := range completing {
		want[id] = lifecycle.EventCompleted
	}
	for _, id := range cancelling {
		want[id] = lifecycle.EventCancelled
	}
	for id, final := range want {
		b := a.waitFinal(t, id, time.Minute)
		require.Equal(t, string(final), b.Status, id)
		total := perBatch
		if id == expiring {
			total = 40
		}
		requireCountsAddUp(t, b, total)
		if final == lifecycle.EventCancelled {
			require.Positive(t, b.Salvo.Counts.Canceled, "%s was cancelled with requests left: %+v", id, b.Salvo.Counts)
		}
		t.Logf("%s: %s, %+v", id, b.Status, b.Salvo.Counts)
		require.Equal(t, int64(total), b.Salvo.ResultsPublished, id)
		require.Equal(t, uint64(total), e.resultCount(t, id), "one result line per request of %s", id)
	}
	// The sweep runs every 100 ms and retries an event left unpublished
	// after 500 ms: a repeat would show within the hold.
	for id, final := range want {
		events.requireOnce(t, id, final, 0)
	}
	holdsFor(t, 2*time.Second, func() {
		for id, final := range want {
			require.Equal(t, map[lifecycle.BatchEventType]int{lifecycle.EventCreated: 1, final: 1}, events.of(id), id)
		}
	})
	events.mu.Lock()
	defer events.mu.Unlock()
	require.Len(t, events.n, len(want), "events only of the batches created")
}
