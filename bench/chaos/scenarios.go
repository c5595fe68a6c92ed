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
		needs(natsClusterNode(), map[string]int{"kill nats-": 2}),
		needs(sentinelFailover("sentinel-failover", 0, false), map[string]int{"SIGKILL the Redis primary": 1}),
		needs(sentinelFailover("sentinel-failover-lagging", time.Second, false), map[string]int{"SIGKILL the Redis primary": 1}),
		needs(sentinelFailover("sentinel-failover-lagging-wait", time.Second, true), map[string]int{"SIGKILL the Redis primary": 1}),
	}
}

// needs sets the faults sc must inject, whatever the size.
func needs(sc *scenario, kinds map[string]int) *scenario {
	sc.minFaults = func(size) map[string]int { return kinds }
	return sc
}

// killWorkers: SIGKILL a random worker at even steps of the results,
// from 10 % to 80 %, restarting it at once.
func killWorkers() *scenario {
	return &scenario{
		name:  "kill-workers",
		title: "SIGKILL a random worker at even steps from 10 % to 80 % of the results, restarted at once",
		inject: func(ctx context.Context, r *run) error {
			return r.killAt(ctx, spread(r.sz.kills, 0.1, 0.8))
		},
		minFaults: func(sz size) map[string]int { return map[string]int{"kill worker": sz.kills} },
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
			return runSteps(ctx, r, 0.15, time.Second, upstreamSteps(r.e.upProx))
		},
		minFaults: func(size) map[string]int { return stepCounts(upstreamSteps(nil)) },
	}
}

// upstreamSteps are upstream-faults' window faults through the proxy up.
func upstreamSteps(up *proxy) []step {
	return []step{
		{"cut upstream connections 1s", time.Second, func() { up.setCut(true) }, func() { up.setCut(false) }},
		{"stall upstream 4s for 3s (first-byte timeout 3s)", 3 * time.Second, func() { up.setDelay(4 * time.Second) }, func() { up.setDelay(0) }},
		{"cut upstream connections 1s", time.Second, func() { up.setCut(true) }, func() { up.setCut(false) }},
	}
}

// stepCounts is how many faults of each kind steps inject.
func stepCounts(steps []step) map[string]int {
	out := map[string]int{}
	for _, s := range steps {
		out[s.kind]++
	}
	return out
}

// step is one window fault of a schedule.
type step struct {
	kind    string
	d       time.Duration
	on, off func()
}

// runSteps waits until share of the results are in, then runs the steps
// one after another, gap apart; it stops early (errBatchesEnded) once
// every batch ended.
func runSteps(ctx context.Context, r *run, share float64, gap time.Duration, steps []step) error {
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
			return fmt.Errorf("%d of the %d faults not run: %w", len(steps)-i, len(steps), errBatchesEnded)
		}
		if err := r.window(ctx, s.kind, s.d, s.on, s.off); err != nil {
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
		minFaults: func(size) map[string]int {
			if mode == redisVolatile {
				return map[string]int{"restart redis-server": 1}
			}
			return map[string]int{"restart redis-server": 2}
		},
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
		minFaults: func(size) map[string]int { return map[string]int{"restart nats-server": 2} },
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
			return runSteps(ctx, r, 0.1, time.Second, networkSteps(r.e.redisProx, r.e.natsProx))
		},
		minFaults: func(size) map[string]int { return stepCounts(networkSteps(nil, nil)) },
	}
}

// networkSteps are network-faults' window faults through the Redis proxy
// rp and the NATS proxy np.
func networkSteps(rp, np *proxy) []step {
	return []step{
		{"cut Redis 3s", 3 * time.Second, func() { rp.setCut(true) }, func() { rp.setCut(false) }},
		{"cut NATS 3s", 3 * time.Second, func() { np.setCut(true) }, func() { np.setCut(false) }},
		{"Redis latency 3s for 4s", 4 * time.Second, func() { rp.setDelay(3 * time.Second) }, func() { rp.setDelay(0) }},
		{"NATS latency 3s for 4s", 4 * time.Second, func() { np.setDelay(3 * time.Second) }, func() { np.setDelay(0) }},
	}
}
