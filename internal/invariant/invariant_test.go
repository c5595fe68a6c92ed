package invariant_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/salvo-run/salvo/internal/config"
	"github.com/salvo-run/salvo/internal/invariant"
	"github.com/salvo-run/salvo/internal/mockupstream"
	"github.com/salvo-run/salvo/internal/testnats"
	"github.com/salvo-run/salvo/internal/testredis"
	"github.com/salvo-run/salvo/internal/testupstream"
	"github.com/salvo-run/salvo/pkg/api"
	"github.com/salvo-run/salvo/pkg/client"
	"github.com/salvo-run/salvo/pkg/httpclient"
	"github.com/salvo-run/salvo/pkg/lifecycle"
)

const (
	batchID  = "b-inv"
	requests = 40
)

// run is a batch a real worker ran to its end, ready for plants.
type run struct {
	nc    *nats.Conn
	js    jetstream.JetStream
	redis *testredis.Server
	mock  *mockupstream.Server
	in    invariant.Input
}

// newRun runs a batch of 40 requests through a worker against a real
// NATS, Redis and the mock upstream, and waits for the batch to end.
func newRun(t *testing.T) *run {
	t.Helper()
	ns, rs := testnats.New(t), testredis.New(t)
	mock := testupstream.New(t, mockupstream.Options{})
	s := config.Default()
	s.NATSURL, s.RedisURL, s.Prefix = ns.URL(), rs.URL(), rs.Prefix
	s.Streams.DiscoveryInterval = 100 * time.Millisecond
	s.Streams.FetchExpiry = time.Second
	s.Worker.ShutdownGrace = time.Second
	s.Upstream.Default = &httpclient.Route{BaseURL: mock.URL()}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p, err := config.Start(ctx, s, config.Options{Getenv: func(string) string { return "" }})
	require.NoError(t, err)
	t.Cleanup(func() {
		stopCtx, stop := context.WithTimeout(context.Background(), p.StopTimeout())
		defer stop()
		require.NoError(t, p.Stop(stopCtx))
	})

	nc := ns.Connect()
	c := client.New(nc, s.Prefix)
	_, err = c.CreateBatch(ctx, api.CreateParams{ID: batchID, Total: requests})
	require.NoError(t, err)
	pub := p.Queue.NewPublisher()
	in := invariant.Input{NATS: nc, Redis: rs.Client, Prefix: s.Prefix, Batches: []string{batchID}}
	for i := range requests {
		id := fmt.Sprintf("r-%02d", i)
		require.NoError(t, pub.Publish(ctx, &lifecycle.Request{
			V: lifecycle.WireVersion, ID: id, CustomID: id, BatchID: batchID, Model: "m", Method: "POST",
			URL: "/v1/chat/completions", Body: json.RawMessage(`{"model":"m","messages":[]}`),
			ExpiresAt: time.Now().Add(time.Hour).UTC(),
		}))
		in.Requests = append(in.Requests, invariant.Request{ID: id, BatchID: batchID})
	}
	require.NoError(t, pub.Flush(ctx))
	require.Eventually(t, func() bool {
		b, err := c.Batch(ctx, batchID)
		return err == nil && b.Status == string(lifecycle.BatchCompleted)
	}, 45*time.Second, 20*time.Millisecond, "the batch completes")
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	r := &run{nc: nc, js: js, redis: rs, mock: mock, in: in}
	// The terminal event is published right after the batch turns final.
	require.Eventually(t, func() bool { return r.check(t).EventSkews == 0 }, 10*time.Second, 20*time.Millisecond)
	return r
}

// check runs the checker with the mock's call log.
func (r *run) check(t *testing.T) *invariant.Report {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	in := r.in
	calls, err := invariant.FetchCalls(ctx, r.mock.URL())
	require.NoError(t, err)
	in.Calls = calls
	rep, err := invariant.Check(ctx, in)
	require.NoError(t, err)
	return rep
}

// publish stores a message on the RESULTS stream as a worker would.
func (r *run) publish(t *testing.T, subject, msgID string, body any) {
	t.Helper()
	data, err := json.Marshal(body)
	require.NoError(t, err)
	_, err = r.js.PublishMsg(t.Context(), &nats.Msg{Subject: subject, Data: data,
		Header: nats.Header{"Nats-Msg-Id": []string{msgID}}})
	require.NoError(t, err)
}

func (r *run) resultSubject() string {
	return r.in.Prefix + ".res." + lifecycle.BatchToken(batchID)
}

func (r *run) key(suffix string) string { return r.in.Prefix + ":{" + batchID + "}:" + suffix }

// A clean run passes with every figure counted, and each planted fault
// fails it under its own name — and only that plant: undoing it passes
// again, so the failure is the plant's.
func TestCheckPassesACleanRunAndFailsOnEachPlantedFault(t *testing.T) {
	t.Parallel()
	r := newRun(t)
	ctx := t.Context()

	clean := r.check(t)
	require.NoError(t, clean.Err())
	require.Equal(t, requests, clean.Requests)
	require.Equal(t, requests, clean.ResultMessages, "one message per request, counted raw")
	require.Equal(t, map[lifecycle.State]int{lifecycle.StateCompleted: requests}, clean.States)
	require.Equal(t, requests, clean.UpstreamCalls)
	require.Zero(t, clean.DuplicateCalls)

	t.Run("duplicate result", func(t *testing.T) {
		// A repeat under another Nats-Msg-Id: the stream's dedup does not
		// catch it, the raw count does.
		r.publish(t, r.resultSubject(), "planted-dup", map[string]any{"v": 1, "id": "r-03", "state": "completed"})
		rep := r.check(t)
		require.Equal(t, 1, rep.Doubled, rep.Summary())
		require.Equal(t, requests+1, rep.ResultMessages)
		require.ErrorContains(t, rep.Err(), "doubled: r-03: 2 result messages (completed, completed)")
	})

	t.Run("copy line that overturns nothing", func(t *testing.T) {
		// Only a racing copy's completed line may follow a failure line.
		r.publish(t, r.resultSubject(), "planted-copy", map[string]any{"v": 1, "id": "r-04", "state": "completed", "escalation_id": "r-04~esc"})
		rep := r.check(t)
		require.Equal(t, 2, rep.Doubled, rep.Summary())
		require.ErrorContains(t, rep.Err(), "doubled: r-04: recorded completed, with a line from a racing copy")
	})

	t.Run("counter skew", func(t *testing.T) {
		require.NoError(t, r.redis.Client.HIncrBy(ctx, r.key("batch"), "completed", 1).Err())
		rep := r.check(t)
		require.Equal(t, 1, rep.CounterSkews, rep.Summary())
		require.ErrorContains(t, rep.Err(), "counter skew: batch b-inv")
		require.NoError(t, r.redis.Client.HIncrBy(ctx, r.key("batch"), "completed", -1).Err())
		require.Zero(t, r.check(t).CounterSkews, "undone")
	})

	t.Run("stranded request", func(t *testing.T) {
		require.NoError(t, r.redis.Client.HSet(ctx, r.key("req:r-07"), "state", "processing").Err())
		rep := r.check(t)
		require.Equal(t, 1, rep.Stranded, rep.Summary())
		require.Equal(t, 1, rep.CounterSkews, "the recount sees it in progress")
		require.ErrorContains(t, rep.Err(), "stranded: r-07: recorded processing")
		require.NoError(t, r.redis.Client.HSet(ctx, r.key("req:r-07"), "state", "completed").Err())
		require.Zero(t, r.check(t).Stranded, "undone")
	})

	t.Run("result line states another state", func(t *testing.T) {
		// The record and the counters agree on failed; the line says
		// completed.
		require.NoError(t, r.redis.Client.HSet(ctx, r.key("req:r-08"), "state", "failed").Err())
		require.NoError(t, r.redis.Client.HIncrBy(ctx, r.key("batch"), "completed", -1).Err())
		require.NoError(t, r.redis.Client.HIncrBy(ctx, r.key("batch"), "failed", 1).Err())
		rep := r.check(t)
		require.Equal(t, 1, rep.Mismatched, rep.Summary())
		require.Zero(t, rep.CounterSkews)
		require.ErrorContains(t, rep.Err(), "mismatched: r-08: recorded failed, result line says completed")
		require.NoError(t, r.redis.Client.HSet(ctx, r.key("req:r-08"), "state", "completed").Err())
		require.NoError(t, r.redis.Client.HIncrBy(ctx, r.key("batch"), "completed", 1).Err())
		require.NoError(t, r.redis.Client.HIncrBy(ctx, r.key("batch"), "failed", -1).Err())
	})

	t.Run("lost result", func(t *testing.T) {
		// Remove r-11's only message from the stream.
		s, err := r.js.Stream(ctx, strings.ToUpper(r.in.Prefix)+"_RESULTS")
		require.NoError(t, err)
		seq := seqOf(t, s, r.resultSubject(), "r-11")
		require.NoError(t, s.DeleteMsg(ctx, seq))
		rep := r.check(t)
		require.Equal(t, 1, rep.Lost, rep.Summary())
		require.ErrorContains(t, rep.Err(), "lost: r-11: recorded completed, no result message")
	})

	t.Run("lost record", func(t *testing.T) {
		require.NoError(t, r.redis.Client.Rename(ctx, r.key("req:r-12"), r.key("req:elsewhere")).Err())
		rep := r.check(t)
		require.Equal(t, 2, rep.Lost, rep.Summary())
		require.ErrorContains(t, rep.Err(), "lost: r-12: no record in Redis")
		require.NoError(t, r.redis.Client.Rename(ctx, r.key("req:elsewhere"), r.key("req:r-12")).Err())
	})

	t.Run("escalation lines", func(t *testing.T) {
		// Only one pair of lines is allowed: the original's published
		// failure, then its racing copy's completed line, the record
		// superseded. Each other combination is planted on its own id.
		s, err := r.js.Stream(ctx, strings.ToUpper(r.in.Prefix)+"_RESULTS")
		require.NoError(t, err)
		line := func(id, st, copyID string) map[string]any {
			l := map[string]any{"v": 1, "id": id, "state": st}
			if copyID != "" {
				l["escalation_id"] = copyID
			}
			return l
		}
		replace := func(id string, recorded lifecycle.State, lines ...map[string]any) {
			require.NoError(t, s.DeleteMsg(ctx, seqOf(t, s, r.resultSubject(), id)))
			for i, l := range lines {
				r.publish(t, r.resultSubject(), fmt.Sprintf("planted-%s-%d", id, i), l)
			}
			require.NoError(t, r.redis.Client.HSet(ctx, r.key("req:"+id), "state", string(recorded)).Err())
		}
		replace("r-30", lifecycle.StateSuperseded, line("r-30", "failed", ""), line("r-30", "completed", "r-30~esc"))
		replace("r-31", lifecycle.StateSuperseded, line("r-31", "completed", "r-31~esc"), line("r-31", "failed", ""))
		replace("r-32", lifecycle.StateSuperseded, line("r-32", "canceled", ""), line("r-32", "completed", "r-32~esc"))
		require.NoError(t, r.redis.Client.HSet(ctx, r.key("req:r-33"), "state", "superseded").Err())
		replace("r-34", lifecycle.StateCompleted, line("r-34", "failed", ""), line("r-34", "completed", "r-34~esc"))
		replace("r-35", lifecycle.StateSuperseded, line("r-35", "completed", "r-35~esc"))
		r.publish(t, r.resultSubject(), "planted-own-id", line("r-36~esc", "completed", ""))
		rep := r.check(t)
		violations := strings.Join(rep.Violations, "\n")
		for _, ok := range []string{"r-30:", "r-35:"} {
			require.NotContains(t, violations, ok, "an overturned failure, or the copy's line alone, is allowed")
		}
		for _, want := range []string{
			"doubled: r-31: its own line and its copy's line, not a failure overturned (completed from r-31~esc, failed)",
			"doubled: r-32: its own line and its copy's line, not a failure overturned (canceled, completed from r-32~esc)",
			"mismatched: r-33: recorded superseded, no line from its racing copy (completed)",
			"doubled: r-34: recorded completed, with a line from a racing copy (failed, completed from r-34~esc)",
			"doubled: r-36~esc: a racing copy published a line under its own id",
		} {
			require.Contains(t, violations, want)
		}
	})

	t.Run("doubled lines of a request whose record is gone", func(t *testing.T) {
		require.NoError(t, r.redis.Client.Rename(ctx, r.key("req:r-37"), r.key("req:gone")).Err())
		r.publish(t, r.resultSubject(), "planted-r-37", map[string]any{"v": 1, "id": "r-37", "state": "completed"})
		rep := r.check(t)
		violations := strings.Join(rep.Violations, "\n")
		require.Contains(t, violations, "lost: r-37: no record in Redis")
		require.Contains(t, violations, "doubled: r-37: 2 result messages (completed, completed)")
	})

	t.Run("batch that never ended", func(t *testing.T) {
		in := r.in
		in.Batches = append(in.Batches, "b-missing")
		rep, err := invariant.Check(ctx, in)
		require.NoError(t, err)
		require.Equal(t, 1, rep.Unended, rep.Summary())
		require.ErrorContains(t, rep.Err(), "unended: batch b-missing: no batch in Redis")
	})

	t.Run("second terminal event", func(t *testing.T) {
		r.publish(t, r.in.Prefix+".evt.batch."+lifecycle.BatchToken(batchID), "planted-evt",
			lifecycle.BatchEvent{Type: lifecycle.BatchEventType(lifecycle.BatchCompleted), Batch: lifecycle.Batch{ID: batchID}})
		rep := r.check(t)
		require.Equal(t, 1, rep.EventSkews, rep.Summary())
		require.ErrorContains(t, rep.Err(), "event skew: batch b-inv (completed): 1 created and 2 terminal events")
	})

	t.Run("completed without an answer", func(t *testing.T) {
		in := r.in
		in.Calls = map[string]invariant.Calls{}
		for _, q := range in.Requests {
			in.Calls[q.ID] = invariant.Calls{Calls: 2, OK: 1}
		}
		in.Calls["r-20"] = invariant.Calls{Calls: 3}
		in.Calls["r-21"] = invariant.Calls{Calls: 3, OK: 3}
		rep, err := invariant.Check(ctx, in)
		require.NoError(t, err)
		require.Equal(t, 1, rep.Unanswered, rep.Summary())
		require.Equal(t, 2, rep.DuplicateCalls, "r-21 was answered twice more than once")
		require.Equal(t, 2*(requests-2)+6, rep.UpstreamCalls)
		require.ErrorContains(t, rep.Err(), "unanswered: r-20: recorded completed, the upstream never answered it 200 (3 calls)")
	})
}

// seqOf finds the stream sequence of id's result message.
func seqOf(t *testing.T, s jetstream.Stream, subject, id string) uint64 {
	t.Helper()
	ctx := t.Context()
	info, err := s.Info(ctx)
	require.NoError(t, err)
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil || m.Subject != subject {
			continue
		}
		var l struct {
			ID string `json:"id"`
		}
		if json.Unmarshal(m.Data, &l) == nil && l.ID == id {
			return seq
		}
	}
	t.Fatalf("no result message of %s on %s", id, subject)
	return 0
}
