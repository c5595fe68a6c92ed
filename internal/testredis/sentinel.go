package testredis

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// MasterName is the name a Sentinel of NewSentinel monitors its primary
// under (redis_master).
const MasterName = "mymaster"

// Sentinel is a redis-server in Sentinel mode on a free loopback port,
// monitoring one primary as MasterName; stopped when the test ends.
type Sentinel struct {
	Addr string

	t        testing.TB
	mu       sync.Mutex
	cmd      *exec.Cmd
	conf     string
	password string
}

// NewSentinel starts a Sentinel monitoring primary, a server New started
// (with an option, or without REDIS_URL). It authenticates to primary as
// primary's clients do (its ACL user, else its password). password, when
// not empty, is the Sentinel's own (requirepass): clients must give it to
// the Sentinel as well as primary's to primary. NewSentinel returns once
// the Sentinel names primary as the master; TLS and Cluster primaries are
// not supported.
func NewSentinel(t testing.TB, primary *Server, password string) *Sentinel {
	t.Helper()
	switch {
	case !primary.managed:
		t.Fatalf("testredis: NewSentinel needs a primary New started (give it an option, or unset REDIS_URL)")
	case primary.opts.tls != nil || primary.opts.cluster:
		t.Fatalf("testredis: NewSentinel monitors a plain-text, non-Cluster primary")
	}
	dir := t.TempDir()
	port := freePort(t)
	lines := []string{
		"port " + strconv.Itoa(port),
		"bind 127.0.0.1",
		"protected-mode no",
		"dir " + dir,
		"loglevel warning",
		"sentinel monitor " + MasterName + " 127.0.0.1 " + strconv.Itoa(primary.port) + " 1",
	}
	switch o := primary.opts; {
	case o.user != "":
		lines = append(lines, "sentinel auth-user "+MasterName+" "+o.user, "sentinel auth-pass "+MasterName+" "+o.userPassword)
	case o.password != "":
		lines = append(lines, "sentinel auth-pass "+MasterName+" "+o.password)
	}
	if password != "" {
		lines = append(lines, "requirepass "+password)
	}
	// A Sentinel rewrites its config file: it must be a writable file.
	conf := filepath.Join(dir, "sentinel.conf")
	if err := os.WriteFile(conf, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatalf("testredis: write sentinel.conf: %v", err)
	}
	s := &Sentinel{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), t: t, conf: conf, password: password}
	s.start()
	t.Cleanup(s.Stop)
	s.wait(primary.Addr)
	return s
}

func (s *Sentinel) start() {
	s.t.Helper()
	cmd := exec.Command(mustPath(s.t), s.conf, "--sentinel")
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("testredis: start redis-server --sentinel: %v", err)
	}
	s.mu.Lock()
	s.cmd = cmd
	s.mu.Unlock()
}

// wait blocks until the Sentinel names master as MasterName's address.
func (s *Sentinel) wait(master string) {
	s.t.Helper()
	c := redis.NewSentinelClient(&redis.Options{Addr: s.Addr, Password: s.password})
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	poll := time.NewTicker(10 * time.Millisecond)
	defer poll.Stop()
	for ; ; <-poll.C {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		addr, err := c.GetMasterAddrByName(ctx, MasterName).Result()
		cancel()
		if err == nil && len(addr) == 2 && net.JoinHostPort(addr[0], addr[1]) == master {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("testredis: Sentinel %s did not name %s as %s: %v %v", s.Addr, master, MasterName, addr, err)
		}
	}
}

// Stop kills the Sentinel; safe to call twice.
func (s *Sentinel) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		_ = s.cmd.Process.Kill()
		_ = s.cmd.Wait()
		s.cmd = nil
	}
}
