package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/salvo-run/salvo/internal/childproc"
	"github.com/salvo-run/salvo/internal/mockupstream"
	"github.com/salvo-run/salvo/pkg/client"
	"github.com/salvo-run/salvo/pkg/queue"
	"github.com/salvo-run/salvo/pkg/state"
)

// The shortened timings of the chaos workers (as pkg/worker's
// kill_chaos_test.go): a dead worker's requests are redelivered and
// reclaimable two seconds after its last heartbeat, so a fault costs
// seconds, not the minutes of the defaults.
const (
	ackWait   = 2 * time.Second
	leaseTTL  = 2 * time.Second
	heartbeat = 500 * time.Millisecond
	// duplicateWindow is the streams' duplicate window: it must outlast the
	// longest stretch between a result's publish and its retry, which a
	// stream outage stretches (a JetStream node kill: about 12 s here). The
	// bad-inputs scenario runs with shortWindow to publish past it soon.
	duplicateWindow = 30 * time.Second
	shortWindow     = 5 * time.Second // at least twice ackWait, as the worker requires
	maxReclaims     = 20              // above any scenario's kills: no request fails for being reclaimed
	prefix          = "chaos"
	redisMaster     = "chaosmaster"
	// replicaSourceIP is the lagging replica's own loopback source address.
	replicaSourceIP = "127.0.0.2"
)

// Models the mock upstream serves. fastModel is the escalation target.
const (
	model     = "chaos-model"
	fastModel = "chaos-fast"
)

// bins are the paths of the binaries the suite runs.
type bins struct{ natsServer, redisServer, worker string }

// redisMode is how Redis runs in a scenario.
type redisMode int

const (
	redisVolatile redisMode = iota // no persistence: a restart starts empty
	redisAOF                       // appendonly, fsync always: a restart loses nothing acknowledged
	redisSentinel                  // a primary, a replica and three sentinels
)

// profile is the shape of a scenario's servers.
type profile struct {
	redis       redisMode
	natsCluster bool // three JetStream nodes, streams R3
	proxies     bool // workers reach Redis and NATS through proxies
	// replicaLag > 0: in Sentinel mode the replica reaches the primary
	// through a proxy that delays the replication stream this long.
	replicaLag time.Duration
	// waitReplicas and waitTimeout are the workers' lease.wait_replicas
	// and lease.wait_timeout (0: off).
	waitReplicas int
	waitTimeout  time.Duration
	// dupWindow is the streams' duplicate window (0: duplicateWindow).
	dupWindow time.Duration
	// upstreamProxy: workers reach the mock upstream through a proxy.
	upstreamProxy bool
	mock          mockupstream.Options
	// extra is appended to every worker's YAML config.
	extra string
	// concurrency per worker process (0: the size's).
	concurrency int
	workers     int
}

// node is one server process of the scenario with what it needs to be
// restarted as the same server (port, data directory, arguments).
type node struct {
	name string
	path string
	args []string
	port int
	c    *childproc.Child
}

// env is one scenario's fresh set of processes on loopback.
type env struct {
	b    bins
	p    *childproc.Set
	sz   size
	prof profile
	dir  string
	log  zerolog.Logger

	nats      []*node // one, or three clustered
	redis     *node   // the primary
	replica   *node   // Sentinel mode
	sentinels []*node
	redisProx *proxy
	natsProx  *proxy
	upProx    *proxy
	replProx  *proxy
	mock      *mockupstream.Server

	mu      sync.Mutex
	workers []*node

	nc  *nats.Conn
	js  jetstream.JetStream
	q   *queue.Client
	rdb redis.UniversalClient
	api *client.Client
	res *resultWatch
}

// startEnv starts every server, the mock upstream and the workers.
func startEnv(ctx context.Context, b bins, p *childproc.Set, sz size, prof profile, log zerolog.Logger) (_ *env, err error) {
	e := &env{b: b, p: p, sz: sz, prof: prof, log: log}
	defer func() {
		if err != nil {
			e.stop()
		}
	}()
	if e.dir, err = os.MkdirTemp("", "chaos-"); err != nil {
		return nil, err
	}
	if err := e.startNATS(ctx); err != nil {
		return nil, err
	}
	if err := e.startRedis(ctx); err != nil {
		return nil, err
	}
	if e.mock, err = mockupstream.New(prof.mock); err != nil {
		return nil, err
	}
	if prof.proxies {
		if e.redisProx, err = newProxy(e.redis.addr()); err != nil {
			return nil, err
		}
		if e.natsProx, err = newProxy(e.nats[0].addr()); err != nil {
			return nil, err
		}
	}
	if prof.upstreamProxy {
		if e.upProx, err = newProxy(e.mock.Addr()); err != nil {
			return nil, err
		}
	}
	n := prof.workers
	if n == 0 {
		n = 3
	}
	for i := range n {
		if _, err := e.startWorker(ctx, i); err != nil {
			return nil, err
		}
	}
	// The harness's own clients, straight to the servers (not through the
	// proxies): they read what the workers wrote.
	if e.nc, err = nats.Connect(e.natsURLs(), nats.Name("chaos"), nats.MaxReconnects(-1),
		nats.ReconnectWait(100*time.Millisecond)); err != nil {
		return nil, err
	}
	if e.js, err = jetstream.New(e.nc); err != nil {
		return nil, err
	}
	if e.q, err = queue.New(e.nc, e.queueConfig(), zerolog.Nop()); err != nil {
		return nil, err
	}
	e.rdb = e.redisClient()
	e.api = client.New(e.nc, prefix)
	if e.res, err = watchResults(e.nc); err != nil {
		return nil, err
	}
	return e, nil
}

func (n *node) addr() string { return "127.0.0.1:" + strconv.Itoa(n.port) }

// start starts the node's process.
func (e *env) start(n *node) (err error) {
	n.c, err = e.p.Start(n.name, nil, n.path, n.args...)
	return err
}

// kill SIGKILLs the node's process and waits for it.
func (e *env) kill(n *node) { e.p.Kill(n.c) }

// restart kills the node and starts it again with the same arguments
// after down.
func (e *env) restart(ctx context.Context, n *node, down time.Duration, ready func(context.Context) error) error {
	e.kill(n)
	if err := pause(ctx, down); err != nil {
		return err
	}
	if err := e.start(n); err != nil {
		return err
	}
	return childproc.WaitFor(ctx, 30*time.Second, n.name+" ready again", n.c, ready)
}

// startNATS starts one nats-server with a file store, or three clustered.
func (e *env) startNATS(ctx context.Context) error {
	count := 1
	if e.prof.natsCluster {
		count = 3
	}
	clusterPorts := make([]int, count)
	for i := range count {
		port, err := childproc.FreePort()
		if err != nil {
			return err
		}
		e.nats = append(e.nats, &node{name: "nats-" + strconv.Itoa(i), path: e.b.natsServer, port: port})
		if clusterPorts[i], err = childproc.FreePort(); err != nil {
			return err
		}
	}
	for i, n := range e.nats {
		n.args = []string{"-a", "127.0.0.1", "-p", strconv.Itoa(n.port), "-js",
			"-sd", filepath.Join(e.dir, n.name), "-n", n.name}
		if count > 1 {
			var routes []string
			for j, cp := range clusterPorts {
				if j != i {
					routes = append(routes, "nats://127.0.0.1:"+strconv.Itoa(cp))
				}
			}
			n.args = append(n.args, "--cluster_name", "chaos", "--cluster", "nats://127.0.0.1:"+strconv.Itoa(clusterPorts[i]),
				"--routes", strings.Join(routes, ","))
		}
		if err := e.start(n); err != nil {
			return err
		}
	}
	for _, n := range e.nats {
		if err := childproc.WaitFor(ctx, 30*time.Second, n.name+" ready", n.c, e.natsReady(n)); err != nil {
			return err
		}
	}
	return nil
}

// natsReady: the node answers and, clustered, JetStream has a meta leader.
func (e *env) natsReady(n *node) func(context.Context) error {
	return func(ctx context.Context) error {
		nc, err := nats.Connect("nats://"+n.addr(), nats.Name("chaos-probe"))
		if err != nil {
			return err
		}
		defer nc.Close()
		js, err := jetstream.New(nc)
		if err != nil {
			return err
		}
		// Bounded: without a meta leader the request is never answered.
		ctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		_, err = js.AccountInfo(ctx)
		return err
	}
}

// natsURLs is every NATS node's URL, comma-separated (what nats.Connect takes).
func (e *env) natsURLs() string {
	urls := make([]string, len(e.nats))
	for i, n := range e.nats {
		urls[i] = "nats://" + n.addr()
	}
	return strings.Join(urls, ",")
}

// startRedis starts redis-server as the profile says.
func (e *env) startRedis(ctx context.Context) error {
	primary, err := e.redisNode("redis", e.prof.redis == redisAOF)
	if err != nil {
		return err
	}
	e.redis = primary
	if err := e.startRedisNode(ctx, primary); err != nil {
		return err
	}
	if e.prof.redis != redisSentinel {
		return nil
	}
	if e.replica, err = e.redisNode("redis-replica", false); err != nil {
		return err
	}
	// With a lag, the primary is reached through a proxy by everyone —
	// the sentinels monitor it there, or they would "fix" the replica to
	// the primary's own port — and the proxy delays only the replica's
	// connection, which comes from its own source address.
	upstreamPort := primary.port
	if e.prof.replicaLag > 0 {
		if e.replProx, err = newProxyDelaying(primary.addr(), replicaSourceIP); err != nil {
			return err
		}
		if upstreamPort, err = strconv.Atoi(e.replProx.addr()[strings.LastIndexByte(e.replProx.addr(), ':')+1:]); err != nil {
			return err
		}
		e.replica.args = append(e.replica.args, "--bind-source-addr", replicaSourceIP, "--replica-announce-ip", "127.0.0.1")
	}
	e.replica.args = append(e.replica.args, "--replicaof", "127.0.0.1", strconv.Itoa(upstreamPort))
	if err := e.startRedisNode(ctx, e.replica); err != nil {
		return err
	}
	// Synced before any work: a replica still waiting for its first full
	// sync would be promoted empty.
	if err := childproc.WaitFor(ctx, 30*time.Second, "the replica synced", e.replica.c, func(ctx context.Context) error {
		c := redis.NewClient(&redis.Options{Addr: e.replica.addr()})
		defer c.Close()
		info, err := c.Info(ctx, "replication").Result()
		if err != nil {
			return err
		}
		if !strings.Contains(info, "master_link_status:up") {
			return errors.New("replica link not up")
		}
		return nil
	}); err != nil {
		return err
	}
	if e.replProx != nil {
		e.replProx.setDelay(e.prof.replicaLag)
	}
	for i := range 3 {
		s, err := e.sentinelNode(i, upstreamPort)
		if err != nil {
			return err
		}
		e.sentinels = append(e.sentinels, s)
		if err := e.startRedisNode(ctx, s); err != nil {
			return err
		}
	}
	// Ready when every sentinel knows the primary and the replica.
	return childproc.WaitFor(ctx, 30*time.Second, "sentinels know the replica", nil, func(ctx context.Context) error {
		for _, s := range e.sentinels {
			c := redis.NewSentinelClient(&redis.Options{Addr: s.addr()})
			reps, err := c.Replicas(ctx, redisMaster).Result()
			_ = c.Close()
			if err != nil {
				return err
			}
			if len(reps) == 0 {
				return errors.New("no replica yet")
			}
		}
		return nil
	})
}

func (e *env) redisNode(name string, aof bool) (*node, error) {
	port, err := childproc.FreePort()
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(e.dir, name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	n := &node{name: name, path: e.b.redisServer, port: port,
		args: []string{"--bind", "127.0.0.1", "--port", strconv.Itoa(port), "--dir", dir, "--save", "",
			"--repl-diskless-sync-delay", "0"}}
	if aof {
		n.args = append(n.args, "--appendonly", "yes", "--appendfsync", "always")
	} else {
		n.args = append(n.args, "--appendonly", "no")
	}
	return n, nil
}

// sentinelNode is one of three sentinels watching the primary on
// primaryPort: quorum 2, down after 1 s.
func (e *env) sentinelNode(i, primaryPort int) (*node, error) {
	port, err := childproc.FreePort()
	if err != nil {
		return nil, err
	}
	conf := filepath.Join(e.dir, "sentinel-"+strconv.Itoa(i)+".conf")
	body := fmt.Sprintf(`bind 127.0.0.1
port %d
dir %s
sentinel monitor %s 127.0.0.1 %d 2
sentinel down-after-milliseconds %s 1000
sentinel failover-timeout %s 10000
sentinel parallel-syncs %s 1
`, port, e.dir, redisMaster, primaryPort, redisMaster, redisMaster, redisMaster)
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		return nil, err
	}
	return &node{name: "sentinel-" + strconv.Itoa(i), path: e.b.redisServer, port: port,
		args: []string{conf, "--sentinel"}}, nil
}

func (e *env) startRedisNode(ctx context.Context, n *node) error {
	if err := e.start(n); err != nil {
		return err
	}
	return childproc.WaitFor(ctx, 20*time.Second, n.name+" ready", n.c, pingNode(n))
}

// pingNode: the redis-server (or sentinel) on n answers PING.
func pingNode(n *node) func(context.Context) error {
	return func(ctx context.Context) error {
		c := redis.NewClient(&redis.Options{Addr: n.addr(), MaxRetries: -1})
		defer c.Close()
		return c.Ping(ctx).Err()
	}
}

// redisClient is the harness's client: the primary, or through the sentinels.
func (e *env) redisClient() redis.UniversalClient {
	if e.prof.redis == redisSentinel {
		addrs := make([]string, len(e.sentinels))
		for i, s := range e.sentinels {
			addrs[i] = s.addr()
		}
		return redis.NewUniversalClient(&redis.UniversalOptions{Addrs: addrs, MasterName: redisMaster})
	}
	return redis.NewClient(&redis.Options{Addr: e.redis.addr()})
}

// dupWindowFlag, when set (-duplicate-window), overrides every
// scenario's duplicate window.
var dupWindowFlag time.Duration

// dupWindow is the scenario's duplicate window.
func (e *env) dupWindow() time.Duration {
	switch {
	case dupWindowFlag > 0:
		return dupWindowFlag
	case e.prof.dupWindow > 0:
		return e.prof.dupWindow
	}
	return duplicateWindow
}

// queueConfig is the streams' config as the workers run it; the harness
// publishes with it.
func (e *env) queueConfig() queue.Config {
	c := queue.Config{Prefix: prefix, AckWait: ackWait, DuplicateWindow: e.dupWindow()}
	if e.prof.natsCluster {
		c.Replicas = 3
	}
	return c.WithDefaults()
}

// workerConfig is the YAML config of a worker serving health on httpPort.
func (e *env) workerConfig(httpPort int) string {
	var b strings.Builder
	natsURL, redisLines := e.natsURLs(), "redis_url: redis://"+e.redis.addr()+"\n"
	if e.prof.proxies {
		natsURL, redisLines = "nats://"+e.natsProx.addr(), "redis_url: redis://"+e.redisProx.addr()+"\n"
	}
	if e.prof.redis == redisSentinel {
		addrs := make([]string, len(e.sentinels))
		for j, s := range e.sentinels {
			addrs[j] = s.addr()
		}
		redisLines = fmt.Sprintf("redis_addrs: [%s]\nredis_master: %s\n", strings.Join(addrs, ", "), redisMaster)
	}
	replicas := 1
	if e.prof.natsCluster {
		replicas = 3
	}
	conc := e.prof.concurrency
	if conc == 0 {
		conc = e.sz.concurrency
	}
	upstream := e.mock.URL()
	if e.upProx != nil {
		upstream = "http://" + e.upProx.addr()
	}
	fmt.Fprintf(&b, `nats_url: %s
%sprefix: %s
http_addr: 127.0.0.1:%d
log_level: warn
streams:
  ack_wait: %s
  duplicate_window: %s
  replicas: %d
lease:
  ttl: %s
  max_reclaims: %d
  wait_replicas: %d
  wait_timeout: %s
upstream:
  routes:
    %s: {base_url: %s}
    %s: {base_url: %s}
  transport_backoff: 20ms
  first_byte_timeout: 3s
retry:
  backoff: 50ms
  max_backoff: 500ms
concurrency:
  default: %d
heartbeat_interval: %s
shutdown_grace: 1s
batches:
  unknown_hold: 5s
  sweep_interval: 500ms
  stranded_after: 10s
  finalize_grace: 5s
  event_retry: 3s
`, natsURL, redisLines, prefix, httpPort, ackWait, e.dupWindow(), replicas, leaseTTL, maxReclaims,
		e.prof.waitReplicas, cmp.Or(e.prof.waitTimeout, state.WaitTimeoutDefault), model, upstream, fastModel, upstream, conc, heartbeat)
	b.WriteString(e.prof.extra)
	return b.String()
}

// startWorker starts worker i (a new process; i names its config) and
// waits until it is ready.
func (e *env) startWorker(ctx context.Context, i int) (*node, error) {
	port, err := childproc.FreePort()
	if err != nil {
		return nil, err
	}
	conf := filepath.Join(e.dir, "worker-"+strconv.Itoa(i)+".yaml")
	if err := os.WriteFile(conf, []byte(e.workerConfig(port)), 0o600); err != nil {
		return nil, err
	}
	n := &node{name: "worker-" + strconv.Itoa(i), path: e.b.worker, port: port, args: []string{"-config", conf}}
	if err := e.start(n); err != nil {
		return nil, err
	}
	if err := childproc.WaitFor(ctx, 30*time.Second, n.name+" ready", n.c, func(ctx context.Context) error {
		return childproc.HTTPOK(ctx, "http://"+n.addr()+"/readyz")
	}); err != nil {
		return nil, err
	}
	e.mu.Lock()
	if i < len(e.workers) {
		e.workers[i] = n
	} else {
		e.workers = append(e.workers, n)
	}
	e.mu.Unlock()
	return n, nil
}

// slots is the fleet's concurrency: the workers times each one's
// concurrency, the most upstream calls the fleet runs at once.
func (e *env) slots() int {
	conc := e.prof.concurrency
	if conc == 0 {
		conc = e.sz.concurrency
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.workers) * conc
}

// workersAlive returns an error naming any worker that exited on its own.
func (e *env) workersAlive() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	var errs []error
	for _, w := range e.workers {
		if gone, err := w.c.Exited(); gone {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// stop closes the clients and kills every process of the scenario.
func (e *env) stop() {
	if e.res != nil {
		e.res.stop()
	}
	if e.nc != nil {
		e.nc.Close()
	}
	if e.rdb != nil {
		_ = e.rdb.Close()
	}
	e.mu.Lock()
	ws := append([]*node(nil), e.workers...)
	e.mu.Unlock()
	for _, w := range ws {
		e.p.Kill(w.c)
	}
	for _, px := range []*proxy{e.redisProx, e.natsProx, e.upProx, e.replProx} {
		if px != nil {
			px.close()
		}
	}
	if e.mock != nil {
		e.mock.Close()
	}
	var rest []*node
	rest = append(rest, e.sentinels...)
	rest = append(rest, e.replica, e.redis)
	rest = append(rest, e.nats...)
	for _, n := range rest {
		if n != nil && n.c != nil {
			e.p.Kill(n.c)
		}
	}
	if e.dir != "" {
		_ = os.RemoveAll(e.dir)
	}
}
