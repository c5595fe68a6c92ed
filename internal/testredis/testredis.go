// Package testredis gives each test a real Redis to talk to: a redis-server
// child process on a free loopback port (stopped when the test ends), or the
// server named by REDIS_URL, and a key prefix unique to the test either way.
//
// No test in salvo mocks Redis; this package is how they reach a real one.
package testredis

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Server is one Redis a test uses.
type Server struct {
	Addr   string
	Prefix string
	Client redis.UniversalClient

	t       testing.TB
	mu      sync.Mutex
	cmd     *exec.Cmd
	port    int
	dir     string
	managed bool
}

var seq atomic.Int64

// New returns a Redis for t. With REDIS_URL set it connects there; otherwise
// it starts redis-server (which must be on PATH; .ci/run installs it).
func New(t testing.TB) *Server {
	t.Helper()
	s := &Server{t: t, Prefix: fmt.Sprintf("t%d-%d", os.Getpid(), seq.Add(1))}
	if url := os.Getenv("REDIS_URL"); url != "" {
		opt, err := redis.ParseURL(url)
		if err != nil {
			t.Fatalf("testredis: REDIS_URL: %v", err)
		}
		s.Addr = opt.Addr
		s.Client = redis.NewClient(opt)
	} else {
		s.managed = true
		s.dir = t.TempDir()
		s.port = freePort(t)
		s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port))
		s.start()
		s.Client = redis.NewClient(&redis.Options{Addr: s.Addr})
	}
	t.Cleanup(func() {
		_ = s.Client.Close()
		s.Stop()
	})
	s.wait()
	return s
}

// Path is the redis-server binary used, found on PATH.
func Path() (string, error) { return exec.LookPath("redis-server") }

func (s *Server) start() {
	s.t.Helper()
	bin, err := Path()
	if err != nil {
		s.t.Fatalf("testredis: redis-server not found on PATH (install it, e.g. apt-get install -y redis-server, or set REDIS_URL): %v", err)
	}
	args := []string{
		"--port", strconv.Itoa(s.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", s.dir,
		"--protected-mode", "no", "--loglevel", "warning",
	}
	if debugOption(bin) {
		// DEBUG SLEEP lets tests stall the server (see Stall).
		args = append(args, "--enable-debug-command", "local")
	}
	cmd := exec.Command(bin, args...)
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("testredis: start redis-server: %v", err)
	}
	s.mu.Lock()
	s.cmd = cmd
	s.mu.Unlock()
}

var (
	debugOnce sync.Once
	debugOK   bool
)

// debugOption reports whether the redis-server binary knows
// --enable-debug-command (Redis 7 and later).
func debugOption(bin string) bool {
	debugOnce.Do(func() {
		out, err := exec.Command(bin, "--version").Output()
		if err != nil {
			return
		}
		// "Redis server v=7.0.15 sha=…"
		_, v, ok := strings.Cut(string(out), "v=")
		if !ok {
			return
		}
		major, _, _ := strings.Cut(v, ".")
		n, err := strconv.Atoi(major)
		debugOK = err == nil && n >= 7
	})
	return debugOK
}

// Stall makes the server stop answering for d (DEBUG SLEEP on a connection
// of its own) and returns at once; the returned channel yields the
// command's error when the server answers again. It skips the test when the
// server does not allow DEBUG (REDIS_URL, or Redis before 7).
func (s *Server) Stall(d time.Duration) <-chan error {
	s.t.Helper()
	if !s.managed || !debugOption(mustPath(s.t)) {
		s.t.Skip("testredis: Stall needs a managed redis-server 7 or later")
	}
	done := make(chan error, 1)
	c := redis.NewClient(&redis.Options{Addr: s.Addr, ReadTimeout: d + 10*time.Second})
	go func() {
		defer c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), d+20*time.Second)
		defer cancel()
		done <- c.Do(ctx, "DEBUG", "SLEEP", strconv.FormatFloat(d.Seconds(), 'f', 3, 64)).Err()
	}()
	// Wait until the sleep holds the server: a PING no longer answers fast.
	poll := time.NewTicker(5 * time.Millisecond)
	defer poll.Stop()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); <-poll.C {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		err := s.Client.Ping(ctx).Err()
		cancel()
		if err != nil {
			break
		}
	}
	return done
}

func mustPath(t testing.TB) string {
	p, err := Path()
	if err != nil {
		t.Fatalf("testredis: %v", err)
	}
	return p
}

// wait blocks until the server answers PING.
func (s *Server) wait() {
	s.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	poll := time.NewTicker(10 * time.Millisecond)
	defer poll.Stop()
	for ; ; <-poll.C {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := s.Client.Ping(ctx).Err()
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("testredis: %s did not answer PING: %v", s.Addr, err)
		}
	}
}

// Stop kills a managed server; safe to call twice. With REDIS_URL it deletes
// the test's keys instead.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.managed {
		s.flushPrefix()
		return
	}
	if s.cmd != nil {
		_ = s.cmd.Process.Kill()
		_ = s.cmd.Wait()
		s.cmd = nil
	}
}

// Restart stops a managed server and starts it again on the same port. Data
// is lost (no persistence), which is what a crash of a cache node looks like.
func (s *Server) Restart() {
	s.t.Helper()
	if !s.managed {
		s.t.Fatalf("testredis: Restart needs a managed redis-server (unset REDIS_URL)")
	}
	s.Stop()
	s.start()
	s.wait()
}

func (s *Server) flushPrefix() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	iter := s.Client.Scan(ctx, 0, s.Prefix+"*", 1000).Iterator()
	var keys []string
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	for len(keys) > 0 {
		n := min(len(keys), 500)
		_ = s.Client.Del(ctx, keys[:n]...).Err()
		keys = keys[n:]
	}
}

// Keys lists the keys under the test's prefix (for assertions).
func (s *Server) Keys(ctx context.Context) ([]string, error) {
	var out []string
	iter := s.Client.Scan(ctx, 0, s.Prefix+"*", 1000).Iterator()
	for iter.Next(ctx) {
		out = append(out, iter.Val())
	}
	return out, iter.Err()
}

// URL is a redis:// URL for the server, for child processes.
func (s *Server) URL() string {
	if url := os.Getenv("REDIS_URL"); url != "" && !s.managed {
		return url
	}
	return "redis://" + s.Addr
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testredis: free port: %v", err)
	}
	defer l.Close()
	addr := l.Addr().String()
	_, port, _ := strings.Cut(addr, ":")
	p, _ := strconv.Atoi(port)
	return p
}
