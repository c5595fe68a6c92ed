package main

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/salvo-run/salvo/internal/mockupstream"
)

// scenarios is the suite, in the order it runs.
func scenarios() []*scenario {
	return []*scenario{
		killWorkers(),
		upstreamFaults(),
		redisRestart("redis-restart-aof", redisAOF),
		redisRestart("redis-restart-volatile", redisVolatile),
		natsRestart(),
		networkFaults(),
		cancelExpiry(),
		escalationRace(),
		badInputs(),
		natsClusterNode(),
		sentinelFailover("sentinel-failover", 0, false),
		sentinelFailover("sentinel-failover-lagging", time.Second, false),
		sentinelFailover("sentinel-failover-lagging-wait", time.Second, true),
	}
}

// killWorkers: SIGKILL a random worker every two seconds, restarting it at once.
func killWorkers() *scenario {
	return &scenario{
		name:  "kill-workers",
		title: "SIGKILL a random worker every 2 s, restarted at once",
		inject: func(ctx context.Context, r *run) error {
			if err := r.waitResults(ctx, 0.1); err != nil {
				return err
			}
			return every(ctx, 2*time.Second, r.sz.kills, func() bool { return r.allEnded(ctx) }, func(int) error {
				return r.killWorker(ctx, r.rnd.IntN(len(r.e.workers)))
			})
		},
	}
}

// upstreamFaults: 429 and 5xx in bursts (runs of consecutive requests whose
// first calls fail), connection resets before the status line, and,
// through a proxy, cuts of every upstream connection and stalls longer
// than the first-byte timeout.
func upstreamFaults() *scenario {
	const block = 50 // requests in a row that share a burst
	return &scenario{
		name:    "upstream-faults",
		title:   "upstream 429/5xx bursts, resets, cut connections and stalls",
		profile: func(size) profile { return profile{upstreamProxy: true} },
		setup: func(ctx context.Context, r *run) error {
			reqs, err := r.newBatch(ctx, r.sc.name, model, r.sz.n, "1h")
			if err != nil {
				return err
			}
			bursts := map[string]int{}
			for i, q := range reqs {
				// 5xx and reset runs: one block in five. 429s come in one
				// burst of ten requests a third of the way in: each 429
				// holds the whole fleet's budget for its Retry-After (1 s),
				// one after another, so ten cost about ten seconds.
				var seq []int
				switch {
				case i >= len(reqs)/3 && i < len(reqs)/3+10:
					seq = []int{http.StatusTooManyRequests}
				case (i/block)%10 == 2:
					seq = []int{http.StatusInternalServerError, http.StatusServiceUnavailable, http.StatusBadGateway}
				case (i/block)%10 == 7:
					seq = []int{mockupstream.StatusReset, mockupstream.StatusReset}
				}
				if seq != nil {
					r.e.mock.SetSequence(q.ID, append(seq, http.StatusOK)...)
					bursts[fmt.Sprint(seq[0])] += len(seq)
				}
			}
			r.note("scripted failing calls: %d × 429 (ten requests in a row), %d × 5xx and %d × reset before the status line (runs of %d requests)",
				bursts["429"], bursts["500"], bursts["-1"], block)
			return r.publish(ctx, reqs)
		},
		inject: func(ctx context.Context, r *run) error {
			up := r.e.upProx
			return runSteps(ctx, r, 0.15, time.Second, 4*time.Second, []step{
				{"cut upstream connections 1s", time.Second, func() { up.setCut(true) }, func() { up.setCut(false) }},
				{"stall upstream 4s for 3s (first-byte timeout 3s)", 3 * time.Second, func() { up.setDelay(4 * time.Second) }, func() { up.setDelay(0) }},
				{"cut upstream connections 1s", time.Second, func() { up.setCut(true) }, func() { up.setCut(false) }},
			})
		},
	}
}

// step is one window fault of a schedule.
type step struct {
	kind    string
	d       time.Duration
	on, off func()
}

// runSteps waits until share of the results are in, then runs the steps
// one after another, gap apart, each settle long in its exposure count;
// it stops early once every batch ended.
func runSteps(ctx context.Context, r *run, share float64, gap, settle time.Duration, steps []step) error {
	if err := r.waitResults(ctx, share); err != nil {
		return err
	}
	for i, s := range steps {
		if i > 0 {
			if err := pause(ctx, gap); err != nil {
				return err
			}
		}
		if r.allEnded(ctx) {
			r.note("the batch ended before %d of the %d faults", len(steps)-i, len(steps))
			return nil
		}
		if err := r.window(ctx, s.kind, s.d, settle, s.on, s.off); err != nil {
			return err
		}
	}
	return nil
}

// redisRestart: SIGKILL redis-server twice mid-batch and start it again on
// the same port and data directory a second later.
func redisRestart(name string, mode redisMode) *scenario {
	title := "SIGKILL redis-server (appendonly, fsync always) twice mid-batch, restarted after 1 s"
	var expect func(*run, *invariantReport) error
	if mode == redisVolatile {
		title = "SIGKILL redis-server without persistence mid-batch, restarted empty after 1 s"
		expect = expectVolatileLoss
	}
	return &scenario{
		name:           name,
		title:          title,
		batchMayVanish: mode == redisVolatile,
		profile:        func(size) profile { return profile{redis: mode} },
		inject: func(ctx context.Context, r *run) error {
			shares := []float64{0.3, 0.65}
			if mode == redisVolatile {
				shares = shares[:1]
			}
			for _, share := range shares {
				if err := r.waitResults(ctx, share); err != nil {
					return err
				}
				if err := r.restartNode(ctx, "restart redis-server", r.e.redis, time.Second, pingNode(r.e.redis)); err != nil {
					return err
				}
			}
			return nil
		},
		expect: expect,
	}
}

// natsRestart: SIGKILL the nats-server (file store) twice mid-batch and
// start it again on the same port and store a second later.
func natsRestart() *scenario {
	return &scenario{
		name:  "nats-restart",
		title: "SIGKILL nats-server (JetStream file store) twice mid-batch, restarted after 1 s",
		inject: func(ctx context.Context, r *run) error {
			for _, share := range []float64{0.3, 0.65} {
				if err := r.waitResults(ctx, share); err != nil {
					return err
				}
				n := r.e.nats[0]
				if err := r.restartNode(ctx, "restart nats-server", n, time.Second, r.e.natsReady(n)); err != nil {
					return err
				}
			}
			return nil
		},
	}
}

// networkFaults: the workers reach Redis and NATS through proxies that cut
// every connection for 3 s (longer than the 2 s lease and AckWait) and
// hold every chunk back by 3 s for 4 s (a latency spike longer than the
// lease).
func networkFaults() *scenario {
	return &scenario{
		name:    "network-faults",
		title:   "cut the workers' Redis and NATS connections 3 s; 3 s latency spikes (lease 2 s)",
		profile: func(size) profile { return profile{proxies: true} },
		inject: func(ctx context.Context, r *run) error {
			rp, np := r.e.redisProx, r.e.natsProx
			return runSteps(ctx, r, 0.1, time.Second, 3*time.Second, []step{
				{"cut Redis 3s", 3 * time.Second, func() { rp.setCut(true) }, func() { rp.setCut(false) }},
				{"cut NATS 3s", 3 * time.Second, func() { np.setCut(true) }, func() { np.setCut(false) }},
				{"Redis latency 3s for 4s", 4 * time.Second, func() { rp.setDelay(3 * time.Second) }, func() { rp.setDelay(0) }},
				{"NATS latency 3s for 4s", 4 * time.Second, func() { np.setDelay(3 * time.Second) }, func() { np.setDelay(0) }},
			})
		},
	}
}
