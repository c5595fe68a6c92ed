package demo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
)

// redisReadyTimeout bounds the wait for a spawned redis-server.
const redisReadyTimeout = 10 * time.Second

// StandInLabel names the in-process stand-in wherever it is reported.
const StandInLabel = "DEV STAND-IN (miniredis), not a real Redis"

// ErrNoRedis: the mode asked for a Redis that is not available.
var ErrNoRedis = errors.New("demo: no redis available")

// redisBackend is the Redis the demo runs on, and how to let go of it.
type redisBackend struct {
	client redis.UniversalClient
	addr   string
	// url is the worker's redis_url (it may hold a password: never print it).
	url string
	// label says which Redis this is, for the output (never credentials).
	label   string
	standIn bool
	// stop closes the client and ends or cleans up the backend.
	stop func()
}

// openRedis picks the Redis for mode: REDIS_URL (keys under prefix,
// deleted at stop), a spawned redis-server, or the in-process stand-in.
func openRedis(ctx context.Context, o Options, prefix, tmp string) (*redisBackend, error) {
	mode := o.Redis
	if mode == RedisAuto {
		switch {
		case o.RedisURL != "":
			mode = RedisURLMode
		case redisServerPath() != "":
			mode = RedisServer
		default:
			mode = RedisMiniredis
		}
	}
	switch mode {
	case RedisURLMode:
		return openRedisURL(ctx, o.RedisURL, prefix)
	case RedisServer:
		return spawnRedisServer(ctx, tmp)
	default:
		return startMiniredis()
	}
}

func redisServerPath() string {
	p, err := exec.LookPath("redis-server")
	if err != nil {
		return ""
	}
	return p
}

func openRedisURL(ctx context.Context, url, prefix string) (*redisBackend, error) {
	opt, err := redis.ParseURL(url)
	if err != nil {
		// The URL may hold a password: name the variable, not the value.
		return nil, fmt.Errorf("demo: REDIS_URL is not a valid redis URL")
	}
	client := redis.NewClient(opt)
	if err := ping(ctx, client, 5*time.Second); err != nil {
		_ = client.Close()
		return nil, fmt.Errorf("demo: REDIS_URL at %s: %w", opt.Addr, err)
	}
	b := &redisBackend{
		client: client,
		addr:   opt.Addr,
		url:    url,
		label:  fmt.Sprintf("REDIS_URL at %s (db %d), keys under %q, deleted at the end", opt.Addr, opt.DB, prefix+":"),
	}
	b.stop = func() {
		deleteKeys(client, prefix+":*")
		_ = client.Close()
	}
	return b, nil
}

// deleteKeys removes the demo's keys from a shared Redis (bounded: the demo
// writes a few hundred keys at most).
func deleteKeys(client redis.UniversalClient, pattern string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var cursor uint64
	for range 10_000 {
		keys, next, err := client.Scan(ctx, cursor, pattern, 500).Result()
		if err != nil {
			return
		}
		if len(keys) > 0 {
			_ = client.Del(ctx, keys...).Err()
		}
		if cursor = next; cursor == 0 {
			return
		}
	}
}

func spawnRedisServer(ctx context.Context, tmp string) (*redisBackend, error) {
	bin := redisServerPath()
	if bin == "" {
		return nil, fmt.Errorf("%w: redis-server is not on PATH", ErrNoRedis)
	}
	// A port free when freePort looks may be taken when redis-server binds
	// it (by another process picking ports the same way): then another
	// port.
	for attempt := 1; ; attempt++ {
		b, err := spawnRedisServerOnce(ctx, tmp, bin)
		if err == nil || attempt == 3 || !errors.Is(err, errPortTaken) {
			return b, err
		}
	}
}

// errPortTaken: redis-server could not have the port freePort found.
var errPortTaken = errors.New("the port was taken")

func spawnRedisServerOnce(ctx context.Context, tmp, bin string) (*redisBackend, error) {
	port, err := freePort(ctx)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp(tmp, "redis-*")
	if err != nil {
		return nil, fmt.Errorf("demo: redis dir: %w", err)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	// The server must outlive ctx's cancellation until stop kills it.
	cmd := exec.CommandContext(context.WithoutCancel(ctx), bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", dir, "--protected-mode", "no", "--loglevel", "warning")
	// Its own process group: a Ctrl-C meant for the demo must not stop
	// Redis under the worker; the demo stops it last.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	output := new(bytes.Buffer) // read once it exited
	cmd.Stdout, cmd.Stderr, cmd.WaitDelay = output, output, time.Second
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("demo: start redis-server: %w", err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait() // "signal: killed" is the expected end
		close(exited)
	}()
	kill := func() {
		_ = cmd.Process.Kill()
		<-exited
	}
	client := redis.NewClient(&redis.Options{Addr: addr})
	pingCtx, stopPing := context.WithCancel(ctx)
	go func() {
		select {
		case <-exited: // unable to bind: no point waiting for an answer
			stopPing()
		case <-pingCtx.Done():
		}
	}()
	err = ping(pingCtx, client, redisReadyTimeout)
	stopPing()
	// The server answering must be the one started: another process on
	// the port would answer PING too.
	if err == nil {
		if pid := infoField(ctx, client, "process_id"); pid != strconv.Itoa(cmd.Process.Pid) {
			err = fmt.Errorf("%w: process %s answers on it", errPortTaken, pid)
		}
	}
	if err != nil {
		_ = client.Close()
		select {
		case <-exited:
			out := strings.TrimSpace(output.String())
			if strings.Contains(out, "Address already in use") {
				return nil, fmt.Errorf("demo: redis-server on %s: %w: %s", addr, errPortTaken, out)
			}
			return nil, fmt.Errorf("demo: redis-server on %s exited: %s", addr, out)
		default:
		}
		kill()
		return nil, fmt.Errorf("demo: redis-server on %s did not answer: %w", addr, err)
	}
	version := infoField(ctx, client, "redis_version")
	return &redisBackend{
		client: client,
		addr:   addr,
		url:    "redis://" + addr,
		label:  fmt.Sprintf("redis-server %s (%s) spawned on %s, stopped at the end", version, bin, addr),
		stop: func() {
			_ = client.Close()
			kill()
		},
	}, nil
}

func startMiniredis() (*redisBackend, error) {
	m := miniredis.NewMiniRedis()
	if err := m.StartAddr("127.0.0.1:0"); err != nil {
		return nil, fmt.Errorf("demo: start miniredis: %w", err)
	}
	client := redis.NewClient(&redis.Options{Addr: m.Addr()})
	return &redisBackend{
		client:  client,
		addr:    m.Addr(),
		url:     "redis://" + m.Addr(),
		label:   StandInLabel + ", in-process on " + m.Addr(),
		standIn: true,
		stop: func() {
			_ = client.Close()
			m.Close()
		},
	}, nil
}

// ping waits up to timeout for the server to answer PING.
func ping(ctx context.Context, client redis.UniversalClient, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	for {
		err := client.Ping(ctx).Err()
		if err == nil {
			return nil
		}
		if ctx.Err() == nil || last == nil {
			last = err // keep the server's answer, not the deadline that cut the wait
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("no answer to PING within %s: %w", timeout, last)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// infoField reads a field of INFO server (redis_version, process_id),
// "unknown" if it cannot.
func infoField(ctx context.Context, client redis.UniversalClient, name string) string {
	info, err := client.Info(ctx, "server").Result()
	if err != nil {
		return "unknown"
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+":"); ok {
			return v
		}
	}
	return "unknown"
}

// freePort asks the kernel for a free loopback port.
func freePort(ctx context.Context) (int, error) {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("demo: free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
