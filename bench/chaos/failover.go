package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// natsClusterNode: three clustered nats-servers, the streams at three
// replicas; one node is SIGKILLed mid-batch and started again 3 s later,
// twice, each time another node.
func natsClusterNode() *scenario {
	return &scenario{
		name:    "nats-cluster-node",
		title:   "3 JetStream nodes, streams R3: SIGKILL one node mid-batch, back after 3 s, twice",
		// At short size the batch would be over before a node restart
		// (3 s) ends: the workers run slower, so both kills land while it
		// runs.
		profile: func(sz size) profile {
			p := profile{natsCluster: true}
			if sz.runtime(sz.n, 3) < 4*3*time.Second {
				p.concurrency = max(1, sz.concurrency/4)
			}
			return p
		},
		inject: func(ctx context.Context, r *run) error {
			first := r.rnd.IntN(3)
			for k, share := range []float64{0.3, 0.65} {
				if err := r.waitResults(ctx, share); err != nil {
					return err
				}
				n := r.e.nats[(first+k)%3]
				if err := r.restartNode(ctx, "kill "+n.name+" of 3, back after 3s", n, 3*time.Second, r.e.natsReady(n)); err != nil {
					return err
				}
			}
			return nil
		},
		verify: func(ctx context.Context, r *run) error {
			for _, name := range []string{r.e.q.RequestsStream(), r.e.q.ResultsStream()} {
				s, err := r.e.js.Stream(ctx, name)
				if err != nil {
					return err
				}
				info := s.CachedInfo()
				if info.Config.Replicas != 3 || info.Cluster == nil || len(info.Cluster.Replicas) != 2 {
					return fmt.Errorf("stream %s: %d replicas configured, cluster %+v: not R3", name, info.Config.Replicas, info.Cluster)
				}
			}
			r.note("REQUESTS and RESULTS at three replicas, each with a leader and two followers")
			return nil
		},
	}
}

// sentinelFailover: Redis as a primary, one asynchronous replica and three
// sentinels (quorum 2, down after 1 s); the workers reach it through the
// sentinels. The primary is SIGKILLed mid-batch; the sentinels promote the
// replica. Writes the primary acknowledged but had not yet sent to the
// replica are lost: the checker shows whether any request ended twice or
// was left without its record.
//
// With wait (lease.wait_replicas 1, wait_timeout above the lag) a write
// counts as done only once the replica has it, so the failover loses
// nothing the workers acted on, and the full invariant check applies. The
// promoted replica has no replica of its own, so every write waits in vain
// until the killed primary is started again (empty, no persistence) and
// the sentinels turn it into the new primary's replica.
// waitConcurrency is the concurrency per worker of the failover with
// wait: enough to run the batch in about a minute, few enough that the
// kill at 40% of the results finds most requests still to run (16 for
// short, 125 for full).
func waitConcurrency(sz size) int { return max(16, sz.n/24) }

func sentinelFailover(name string, lag time.Duration, wait bool) *scenario {
	title := "Sentinel: SIGKILL the primary mid-batch, the replica is promoted"
	if lag > 0 {
		title = fmt.Sprintf("Sentinel, the replica %s behind: SIGKILL the primary mid-batch, the replica is promoted", lag)
	}
	prof := func(sz size) profile {
		p := profile{redis: redisSentinel, replicaLag: lag}
		if wait {
			p.waitReplicas, p.waitTimeout, p.concurrency = 1, 5*lag, waitConcurrency(sz)
		}
		return p
	}
	expect := expectFailoverLoss
	if wait {
		// Each write waits about two lags (the stream there, the ack
		// back, both through the delaying proxy) and a request makes
		// three in a row (claim, finish, publish mark): many requests in
		// flight per worker keep the batch within the scenario's bound,
		// and the group commit shares each wait among them.
		title += fmt.Sprintf("; workers wait for it (wait_replicas 1, wait_timeout %s); the old primary back as its replica", 5*lag)
		expect = nil
	}
	return &scenario{
		name:    name,
		title:   title,
		profile: prof,
		// A request whose lost writes leave it pending with its message
		// gone ends only when its batch expires: a window of twice the
		// expected run keeps the scenario bounded.
		setup: func(ctx context.Context, r *run) error {
			window := max(2*r.sz.runtime(r.sz.n, 3), 12*time.Second).Round(time.Second)
			if wait {
				// Three writes of about three lags each per request, and
				// the writes stalled until the old primary is back as a
				// replica (about 15 s).
				per := 1.5*r.sz.latency.Seconds() + 9*lag.Seconds()
				run := time.Duration(float64(r.sz.n) * per / float64(3*waitConcurrency(r.sz)) * float64(time.Second))
				window = (2*run + 30*time.Second).Round(time.Second)
			}
			reqs, err := r.newBatch(ctx, r.sc.name, model, r.sz.n, window.String())
			if err != nil {
				return err
			}
			r.note("completion window %s", window)
			return r.publish(ctx, reqs)
		},
		expect: expect,
		inject: func(ctx context.Context, r *run) error {
			if err := r.waitResults(ctx, 0.4); err != nil {
				return err
			}
			primary := r.e.redis
			// Exposed to the fault: the calls in flight, and with a lag
			// every call the lost writes recorded — those that began in
			// the lag before the kill.
			calls0, inFlight := r.e.mock.Calls(), r.inFlight()
			if lag > 0 {
				if err := pause(ctx, lag); err != nil {
					return err
				}
			}
			offset := r.replOffsets(ctx)
			at := time.Now()
			inFlight += int(r.e.mock.Calls() - calls0)
			if r.e.replProx != nil {
				// The replication stream still in transit dies with the
				// primary: cut it first, or the proxy would deliver it.
				r.e.replProx.setCut(true)
			}
			r.e.kill(primary)
			r.failoverAt = at
			s := redis.NewSentinelClient(&redis.Options{Addr: r.e.sentinels[0].addr()})
			defer s.Close()
			want := strconv.Itoa(r.e.replica.port)
			if err := waitUntil(ctx, 30*time.Second, "the replica promoted", func(ctx context.Context) bool {
				addr, err := s.GetMasterAddrByName(ctx, redisMaster).Result()
				return err == nil && len(addr) == 2 && addr[1] == want
			}); err != nil {
				return err
			}
			r.addFault("SIGKILL the Redis primary, replica promoted", at, inFlight)
			r.note("primary killed; the sentinels promoted the replica %s after it; replication offsets just before the kill: %s",
				time.Since(at).Round(10*time.Millisecond), offset)
			if wait {
				return r.rejoinAsReplica(ctx, primary, at)
			}
			return nil
		},
	}
}

// rejoinAsReplica starts the killed primary again (empty) and waits until
// the sentinels made it the promoted replica's replica and it synced: the
// writes, which wait for one replica, go through again from then on.
func (r *run) rejoinAsReplica(ctx context.Context, old *node, killed time.Time) error {
	if r.e.replProx != nil {
		// The sentinels reach the old primary through the proxy.
		r.e.replProx.setCut(false)
	}
	if err := r.e.start(old); err != nil {
		return err
	}
	c := redis.NewClient(&redis.Options{Addr: r.e.replica.addr()})
	defer c.Close()
	if err := waitUntil(ctx, 60*time.Second, "the old primary a synced replica of the new one", func(ctx context.Context) bool {
		info, err := c.Info(ctx, "replication").Result()
		return err == nil && strings.Contains(info, "connected_slaves:1") && strings.Contains(info, "state=online")
	}); err != nil {
		return err
	}
	r.note("the old primary restarted empty and synced as the new primary's replica %s after the kill; writes waited until then",
		time.Since(killed).Round(10*time.Millisecond))
	return nil
}

// replOffsets is the primary's and the replica's replication offsets: the
// bytes of writes the replica had not yet received when they differ.
func (r *run) replOffsets(ctx context.Context) string {
	read := func(n *node) string {
		c := redis.NewClient(&redis.Options{Addr: n.addr()})
		defer c.Close()
		info, err := c.Info(ctx, "replication").Result()
		if err != nil {
			return "?"
		}
		for _, key := range []string{"slave_repl_offset:", "master_repl_offset:"} {
			if i := indexOf(info, key); i >= 0 {
				rest := info[i+len(key):]
				j := 0
				for j < len(rest) && rest[j] >= '0' && rest[j] <= '9' {
					j++
				}
				return rest[:j]
			}
		}
		return "?"
	}
	return fmt.Sprintf("primary %s, replica %s", read(r.e.redis), read(r.e.replica))
}

func indexOf(s, sub string) int {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return i
		}
	}
	return -1
}
