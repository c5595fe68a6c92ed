package main

import (
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/salvo-run/salvo/internal/testnats"
)

func TestUsageErrorsExitTwo(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		nil,
		{"bogus"},
		{"status"},
		{"status", "a", "b"},
		{"status", "--bogus", "a"},
		{"watch"},
		{"watch", "b1", "--interval", "0s"},
		{"cancel"},
		{"cancel", "b1", "--batch", "b2"},
		{"list", "--status", "nope"},
		{"list", "--limit", "0"},
		{"list", "--metadata", "novalue"},
		{"submit"},
		{"submit", "f.jsonl", "--output", "out.jsonl"},
		{"submit", "f.jsonl", "--max-requests", "0"},
		{"validate"},
		{"validate", "--completion-window", "0h", "x"},
		{"results"},
		{"--prefix", "a.b", "status", "b1"},
		{"--tlscert", "c.pem", "status", "b1"},
	} {
		r := cli(t, nil, args...)
		require.Equal(t, exitUsage, r.code, "%q", args)
		require.Contains(t, r.err, "producer: ", "%q", args)
		require.Empty(t, r.out, "%q: usage errors go to stderr", args)
	}
}

func TestHelpEverywhereWithExamples(t *testing.T) {
	t.Parallel()
	r := cli(t, nil, "--help")
	require.Equal(t, exitOK, r.code)
	for _, want := range []string{"Exit codes:", "3    unreachable", "130", "NATS_URL", "SALVO_PREFIX", "completion"} {
		require.Contains(t, r.out, want)
	}
	for _, cmd := range []string{"submit", "watch", "status", "cancel", "results", "list", "validate"} {
		r := cli(t, nil, cmd, "--help")
		require.Equal(t, exitOK, r.code, cmd)
		require.Contains(t, r.out, "Examples:", cmd)
		require.Contains(t, r.out, "producer "+cmd, cmd)
	}
	r = cli(t, nil, "completion", "bash")
	require.Equal(t, exitOK, r.code)
	require.Contains(t, r.out, "bash completion")
}

func TestVersionPrintsTheBuild(t *testing.T) {
	t.Parallel()
	r := cli(t, nil, "--version")
	require.Equal(t, exitOK, r.code)
	require.Regexp(t, `^producer \S+\n$`, r.out)
}

// A server that refuses the connection fails at once, naming the URL
// (without its password), whether it came from the flag or NATS_URL.
func TestUnreachableNATSExitsThreeAtOnce(t *testing.T) {
	t.Parallel()
	url := "nats://127.0.0.1:" + strconv.Itoa(closedPort(t))
	r := cli(t, nil, "-s", url, "status", "b1")
	require.Equal(t, exitUnreachable, r.code)
	require.Contains(t, r.err, "producer: cannot reach NATS at "+url)
	require.Equal(t, 1, countLines(r.err), "one line")
	require.Less(t, r.took, 2*time.Second)

	withPassword := "nats://bob:s3cret@127.0.0.1:" + strconv.Itoa(closedPort(t))
	r = cli(t, map[string]string{"NATS_URL": withPassword}, "list")
	require.Equal(t, exitUnreachable, r.code)
	require.Contains(t, r.err, "cannot reach NATS at nats://bob:xxxxx@127.0.0.1:")
	require.NotContains(t, r.err, "s3cret")

	r = cli(t, map[string]string{"NATS_URL": withPassword}, "-s", url, "cancel", "b1")
	require.Equal(t, exitUnreachable, r.code)
	require.Contains(t, r.err, url, "the flag wins over NATS_URL")
}

// A server that accepts but never speaks NATS is given up after the
// connect timeout: no hang, no retry loop.
func TestSilentServerTimesOutWithinTheConnectTimeout(t *testing.T) {
	t.Parallel()
	addr := silentServer(t)
	r := cli(t, nil, "-s", "nats://"+addr, "status", "b1")
	require.Equal(t, exitUnreachable, r.code)
	require.Contains(t, r.err, "cannot reach NATS at nats://"+addr)
	require.Less(t, r.took, connectTimeoutDefault+2*time.Second)
}

// NATS answers but no worker serves the batch API on the prefix: exit 3,
// naming the subject.
func TestNoBatchServiceExitsThreeNamingTheSubject(t *testing.T) {
	t.Parallel()
	ns := testnats.New(t)
	for _, args := range [][]string{
		{"status", "b1"}, {"watch", "b1"}, {"list"}, {"cancel", "b1"}, {"cancel", "--request", "r1", "--batch", "b1"},
	} {
		r := cli(t, map[string]string{"NATS_URL": ns.URL(), "SALVO_PREFIX": "nosvc"}, args...)
		require.Equal(t, exitUnreachable, r.code, "%q", args)
		require.Contains(t, r.err, "no batch service answers on nosvc.api.", "%q", args)
		require.Equal(t, 1, countLines(r.err), "%q", args)
	}
}

func countLines(s string) int {
	n := 0
	for _, c := range s {
		if c == '\n' {
			n++
		}
	}
	return n
}

// closedPort is a loopback port nobody listens on.
func closedPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := l.Addr().(*net.TCPAddr).Port
	require.NoError(t, l.Close())
	return port
}

// silentServer accepts connections and never writes to them.
func silentServer(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var (
		mu    sync.Mutex
		conns []net.Conn
		wg    sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = l.Close()
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	return l.Addr().String()
}
