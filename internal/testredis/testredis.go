// Package testredis gives each test a real Redis to talk to: a redis-server
// child process on a free loopback port (stopped when the test ends), or the
// server named by REDIS_URL, and a key prefix unique to the test either way.
// Options make the child require a password or an ACL user, speak TLS only,
// or run as a one-node Cluster; a server with options is always a child,
// REDIS_URL or not. NewSentinel adds a Sentinel monitoring a child.
//
// No test in salvo mocks Redis; this package is how they reach a real one.
package testredis

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/salvo-run/salvo/internal/testtls"
)

// Server is one Redis a test uses.
type Server struct {
	Addr   string
	Prefix string
	Client redis.UniversalClient

	t       testing.TB
	mu      sync.Mutex
	cmd     *exec.Cmd
	exited  chan struct{} // closed once cmd has exited
	output  *bytes.Buffer // cmd's stdout and stderr, read once exited
	port    int
	dir     string
	managed bool
	opts    options
}

var seq atomic.Int64

// options are what the Options ask of a managed server.
type options struct {
	password           string
	user, userPassword string
	tls                *testtls.Files
	cluster            bool
	replicaOf          int // the primary's port (NewReplica)
}

// Option changes the redis-server New starts. A server with options is
// always a child process, even with REDIS_URL set (that server is not
// configured by the test).
type Option func(*options)

// WithPassword makes the default user require password (requirepass).
func WithPassword(password string) Option { return func(o *options) { o.password = password } }

// WithUser adds an ACL user allowed every command and key.
func WithUser(name, password string) Option {
	return func(o *options) { o.user, o.userPassword = name, password }
}

// WithTLS makes the server speak TLS only, with files' server certificate,
// requiring client certificates signed by files' CA. It skips the test
// when the redis-server on PATH is built without TLS: a test that checks
// more than TLS asks TLSSupported first and adds WithTLS only then.
func WithTLS(files testtls.Files) Option { return func(o *options) { o.tls = &files } }

// WithCluster runs the server as a one-node Cluster serving every slot.
func WithCluster() Option { return func(o *options) { o.cluster = true } }

// New returns a Redis for t. With REDIS_URL set and no options it connects
// there; otherwise it starts redis-server (which must be on PATH; .ci/run
// installs it).
func New(t testing.TB, opts ...Option) *Server {
	t.Helper()
	s := &Server{t: t, Prefix: fmt.Sprintf("t%d-%d", os.Getpid(), seq.Add(1))}
	for _, o := range opts {
		o(&s.opts)
	}
	url := os.Getenv("REDIS_URL")
	if len(opts) > 0 {
		if _, err := Path(); err != nil && url != "" {
			t.Skip("testredis: options need a redis-server on PATH, REDIS_URL's server is not the test's to configure")
		}
		url = ""
	}
	if s.opts.tls != nil && !TLSSupported() {
		t.Skip("testredis: the redis-server on PATH is built without TLS")
	}
	if url != "" {
		opt, err := redis.ParseURL(url)
		if err != nil {
			t.Fatalf("testredis: REDIS_URL: %v", err)
		}
		s.Addr = opt.Addr
		s.Client = redis.NewClient(opt)
	} else {
		s.managed = true
		s.dir = t.TempDir()
		t.Cleanup(func() {
			if s.Client != nil { // nil when the start failed
				_ = s.Client.Close()
			}
			s.Stop()
		})
		s.startOnFreePort()
		return s
	}
	t.Cleanup(func() {
		_ = s.Client.Close()
		s.Stop()
	})
	s.wait()
	return s
}

// errPortTaken: the port freePort found was taken before redis-server
// bound it — by another test's server (which then answers PING, and would
// vanish mid-test when that test ends) or by any other socket.
var errPortTaken = errors.New("the port was taken before redis-server bound it")

// startOnFreePort starts the managed server on a free port, and on another
// when the port turns out taken: a port is free when freePort looks and
// may not be when redis-server binds it, with tests in other processes
// picking ports too.
func (s *Server) startOnFreePort() {
	s.t.Helper()
	for attempt := 1; ; attempt++ {
		s.port = pickPort(s.t)
		s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port))
		s.start()
		s.Client = redis.NewClient(s.clientOptions())
		err := s.pollErr(s.ready)
		if err == nil {
			return
		}
		if attempt == 5 || !errors.Is(err, errPortTaken) {
			s.t.Fatalf("testredis: %s did not answer PING: %v", s.Addr, err)
		}
		_ = s.Client.Close()
		s.Stop()
	}
}

// clientOptions reach the managed server as its options ask: the ACL
// user or the password, TLS with the client certificate.
func (s *Server) clientOptions() *redis.Options {
	o := &redis.Options{Addr: s.Addr, Password: s.opts.password}
	if s.opts.user != "" {
		o.Username, o.Password = s.opts.user, s.opts.userPassword
	}
	if s.opts.tls != nil {
		o.TLSConfig = s.opts.tls.ClientConfig(s.t)
	}
	return o
}

// args are the redis-server options the Options ask for.
func (o options) args(dir string, port int, t testing.TB) []string {
	var args []string
	if o.password != "" {
		args = append(args, "--requirepass", o.password)
	}
	if o.user != "" {
		// One argument each: redis-server joins them into the directive.
		args = append(args, "--user", o.user, "on", ">"+o.userPassword, "~*", "&*", "+@all")
	}
	if o.tls != nil {
		args = append(args, "--tls-port", strconv.Itoa(port),
			"--tls-cert-file", o.tls.ServerCert, "--tls-key-file", o.tls.ServerKey,
			"--tls-ca-cert-file", o.tls.CA, "--tls-auth-clients", "yes")
	}
	if o.cluster {
		args = append(args, "--cluster-enabled", "yes", "--cluster-config-file", filepath.Join(dir, "nodes.conf"),
			"--cluster-port", strconv.Itoa(freePort(t)),
			// A node that never met another knows no address of its own:
			// CLUSTER SLOTS would name it "" and TLS would have no host.
			"--cluster-announce-ip", "127.0.0.1")
		if o.tls != nil {
			// Announce the TLS port in CLUSTER SLOTS (the plain one is 0).
			args = append(args, "--tls-cluster", "yes")
		}
	}
	if o.replicaOf != 0 {
		args = append(args, "--replicaof", "127.0.0.1", strconv.Itoa(o.replicaOf))
		switch {
		case o.user != "":
			args = append(args, "--masteruser", o.user, "--masterauth", o.userPassword)
		case o.password != "":
			args = append(args, "--masterauth", o.password)
		}
	}
	return args
}

var (
	tlsOnce sync.Once
	tlsOK   bool
)

// TLSSupported reports whether the redis-server on PATH knows --tls-port:
// a build without TLS refuses the directive.
func TLSSupported() bool {
	tlsOnce.Do(func() {
		bin, err := Path()
		if err != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		// Both ports 0: a TLS build exits "not listening anywhere".
		out, _ := exec.CommandContext(ctx, bin, "--port", "0", "--tls-port", "0").CombinedOutput()
		tlsOK = !strings.Contains(string(out), "Bad directive")
	})
	return tlsOK
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
	if s.opts.tls != nil {
		args[1] = "0" // the TLS port takes the port (see options.args)
	}
	args = append(args, s.opts.args(s.dir, s.port, s.t)...)
	if debugOption(bin) {
		// DEBUG SLEEP lets tests stall the server (see Stall).
		args = append(args, "--enable-debug-command", "local")
	}
	cmd := exec.Command(bin, args...)
	output := new(bytes.Buffer)
	cmd.Stdout, cmd.Stderr = output, output
	// A child it forked (a replication or save child) may hold the output
	// pipe after it exited: Wait does not wait for that child long.
	cmd.WaitDelay = time.Second
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("testredis: start redis-server: %v", err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	s.mu.Lock()
	s.cmd, s.exited, s.output = cmd, exited, output
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
	o := s.clientOptions()
	o.ReadTimeout = d + 10*time.Second
	c := redis.NewClient(o)
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
	s.poll("answer PING", s.ready)
}

// ready reports whether the server answers PING (and a Cluster serves
// every slot). A managed server must be the process this Server started:
// errPortTaken when another answers on its port or it exited unable to
// bind; any other exit fails with its output.
func (s *Server) ready(ctx context.Context) error {
	s.mu.Lock()
	cmd, exited, output := s.cmd, s.exited, s.output
	s.mu.Unlock()
	if s.managed && cmd != nil {
		select {
		case <-exited:
			if strings.Contains(output.String(), "Address already in use") {
				return fmt.Errorf("%w: %s", errPortTaken, strings.TrimSpace(output.String()))
			}
			return fmt.Errorf("%w: redis-server exited: %s", errExited, strings.TrimSpace(output.String()))
		default:
		}
	}
	if err := s.Client.Ping(ctx).Err(); err != nil {
		return err
	}
	if s.managed && cmd != nil {
		info, err := s.Client.Info(ctx, "server").Result()
		if err != nil {
			return err
		}
		if pid := infoField(info, "process_id"); pid != strconv.Itoa(cmd.Process.Pid) {
			return fmt.Errorf("%w: process %s answers, not %d", errPortTaken, pid, cmd.Process.Pid)
		}
	}
	if s.opts.cluster {
		return s.serveAllSlots(ctx)
	}
	return nil
}

// errExited: the server's process ended (not for want of its port).
var errExited = errors.New("the server exited")

// infoField is a field of an INFO reply ("" when absent).
func infoField(info, name string) string {
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+":"); ok {
			return v
		}
	}
	return ""
}

// poll calls ready every 10 ms (each call bounded by 1 s) until it returns
// nil, and fails the test after 10 s saying the server did not do what.
func (s *Server) poll(what string, ready func(context.Context) error) {
	s.t.Helper()
	if err := s.pollErr(ready); err != nil {
		s.t.Fatalf("testredis: %s did not %s: %v", s.Addr, what, err)
	}
}

// pollErr calls ready every 10 ms (each call bounded by 1 s) until it
// returns nil, for at most 10 s; errPortTaken and errExited end it at once.
func (s *Server) pollErr(ready func(context.Context) error) error {
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for ; ; <-tick.C {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := ready(ctx)
		cancel()
		switch {
		case err == nil:
			return nil
		case errors.Is(err, errPortTaken), errors.Is(err, errExited), time.Now().After(deadline):
			return err
		}
	}
}

// serveAllSlots gives the one node every slot (once; a restart keeps them
// in nodes.conf) and reports an error until the cluster state is ok.
func (s *Server) serveAllSlots(ctx context.Context) error {
	info, err := s.Client.ClusterInfo(ctx).Result()
	if err != nil {
		return err
	}
	if strings.Contains(info, "cluster_slots_assigned:0") {
		if err := s.Client.Do(ctx, "CLUSTER", "ADDSLOTSRANGE", 0, 16383).Err(); err != nil {
			return err
		}
	}
	if !strings.Contains(info, "cluster_state:ok") {
		return errors.New("cluster state not ok yet")
	}
	return nil
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
		<-s.exited
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

// URL is a redis:// URL for the server, for child processes: rediss://
// with WithTLS. It holds no password.
func (s *Server) URL() string {
	if url := os.Getenv("REDIS_URL"); url != "" && !s.managed {
		return url
	}
	if s.opts.tls != nil {
		return "rediss://" + s.Addr
	}
	return "redis://" + s.Addr
}

// pickPort is the port a managed server tries next (freePort; a test
// hands out a taken one).
var pickPort = freePort

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
