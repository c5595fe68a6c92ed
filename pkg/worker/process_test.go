package worker_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/salvo-run/salvo/internal/testbin"
	"github.com/salvo-run/salvo/internal/testlog"
)

// child is a worker process.
type child struct {
	cmd    *exec.Cmd
	config string // the YAML file it reads
	logs   *testlog.Buffer
	done   chan struct{}
	err    error
}

type childOpts struct {
	grace      time.Duration
	ackWait    time.Duration
	leaseTTL   time.Duration
	concurrent int
	// defaults leaves streams.ack_wait, lease.ttl and heartbeat_interval
	// out of the file, so the worker runs at the shipped defaults.
	defaults bool
	// extra is appended to the file (a batches: section, say).
	extra string
}

// childConfig is the YAML config of a child worker.
func (e *env) childConfig(o childOpts) string {
	if o.grace == 0 {
		o.grace = time.Second
	}
	if o.ackWait == 0 {
		o.ackWait = testAckWait
	}
	if o.leaseTTL == 0 {
		o.leaseTTL = testLeaseTTL
	}
	if o.concurrent == 0 {
		o.concurrent = 16
	}
	timings := fmt.Sprintf("streams:\n  ack_wait: %s\nlease:\n  ttl: %s\n  max_reclaims: 2\nheartbeat_interval: %s\n",
		o.ackWait, o.leaseTTL, testHeartbeat)
	if o.defaults {
		timings = ""
	}
	return fmt.Sprintf(`nats_url: %s
redis_url: %s
prefix: %s
http_addr: 127.0.0.1:0
log_level: info
upstream:
  default:
    base_url: %s
  transport_backoff: 20ms
retry:
  backoff: 50ms
  max_backoff: 500ms
concurrency:
  default: %d
shutdown_grace: %s
%s%s`, e.nats.URL(), e.redis.URL(), e.prefix, e.mock.URL(), o.concurrent, o.grace, timings, o.extra)
}

// startChild runs cmd/worker against the env with a YAML config file.
func (e *env) startChild(t testing.TB, o childOpts) *child {
	t.Helper()
	return runChild(t, e.childConfig(o))
}

// runChild runs cmd/worker with config as its YAML file; the process is
// killed when t ends, and its logs are shown if t failed.
func runChild(t testing.TB, config string) *child {
	t.Helper()
	path := filepath.Join(t.TempDir(), "worker.yaml")
	require.NoError(t, os.WriteFile(path, []byte(config), 0o600))

	c := &child{config: path, logs: &testlog.Buffer{}, done: make(chan struct{})}
	c.cmd = exec.Command(testbin.Worker(t), "-config", path)
	c.cmd.Stdout = c.logs
	c.cmd.Stderr = c.logs
	c.cmd.Env = append(os.Environ(), "SALVO_CONFIG=")
	require.NoError(t, c.cmd.Start())
	go func() {
		c.err = c.cmd.Wait()
		close(c.done)
	}()
	t.Cleanup(func() {
		c.kill()
		if t.Failed() {
			t.Logf("worker %d logs:\n%s", c.cmd.Process.Pid, tail(c.logs.String(), 4000))
		}
	})
	return c
}

func (c *child) kill() {
	select {
	case <-c.done:
	default:
		_ = c.cmd.Process.Signal(syscall.SIGKILL)
		<-c.done
	}
}

func (c *child) signal(t testing.TB, sig os.Signal) {
	t.Helper()
	require.NoError(t, c.cmd.Process.Signal(sig))
}

func (c *child) wait(t testing.TB, timeout time.Duration) error {
	t.Helper()
	select {
	case <-c.done:
		return c.err
	case <-time.After(timeout):
		t.Fatalf("worker process did not exit within %s", timeout)
		return nil
	}
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}
