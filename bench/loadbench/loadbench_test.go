package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/salvo-run/salvo/internal/childproc"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestParseStatCPUSumsUtimeAndStimeAfterTheCommandName(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		stat string
		want time.Duration
	}{
		"plain": {
			stat: "1234 (worker) S 1 1234 1234 0 -1 4194560 500 0 0 0 250 37 0 0 20 0 9 0 100 0 0",
			want: 2870 * time.Millisecond,
		},
		"command name with spaces and parentheses": {
			stat: "42 (a (b) c) R 1 42 42 0 -1 0 0 0 0 0 1 2 0 0 20 0 1 0 5 0 0",
			want: 30 * time.Millisecond,
		},
	} {
		t.Run(name, func(t *testing.T) {
			got, err := parseStatCPU(tc.stat)
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
	_, err := parseStatCPU("1 (x) S 1 2 3")
	require.Error(t, err)
	_, err = parseStatCPU("no command name")
	require.Error(t, err)
}

func TestCPUTimeOfThisProcessGrowsWithWork(t *testing.T) {
	t.Parallel()
	before, err := cpuTime(os.Getpid())
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		x := 0
		for i := range 5_000_000 {
			x ^= i
		}
		_ = x
		after, err := cpuTime(os.Getpid())
		return err == nil && after > before
	}, 10*time.Second, time.Millisecond)
}

func TestParseStatusKiBReadsVmHWM(t *testing.T) {
	t.Parallel()
	status := "Name:\tworker\nVmPeak:\t 1300 kB\nVmHWM:\t   30820 kB\nVmRSS:\t   30000 kB\n"
	got, err := parseStatusKiB(status, "VmHWM")
	require.NoError(t, err)
	require.Equal(t, int64(30820), got)
	_, err = parseStatusKiB(status, "RssAnon")
	require.Error(t, err)
	kib, err := peakRSSKiB(os.Getpid())
	require.NoError(t, err)
	require.Positive(t, kib)
}

func TestMedianAndPercentile(t *testing.T) {
	t.Parallel()
	require.InDelta(t, 2.0, median([]float64{3, 1, 2}), 0)
	require.InDelta(t, 2.5, median([]float64{4, 1, 3, 2}), 0)
	xs := make([]float64, 100)
	for i := range xs {
		xs[i] = float64(100 - i)
	}
	require.InDelta(t, 50.0, percentile(xs, 50), 0)
	require.InDelta(t, 99.0, percentile(xs, 99), 0)
	require.InDelta(t, 100.0, percentile(xs, 100), 0)
	require.InDelta(t, 7.0, percentile([]float64{7}, 99), 0)
}

// TestEverySystemFinishesARoundAgainstRealProcesses runs one small round of
// each system under test — salvo's worker, the pipeline and asynq — with
// nats-server, redis-server and the mock upstream as their own processes,
// so that the benchmark tool cannot rot: measure checks the end state
// (exactly n results and an empty request stream, or asynq's counters).
func TestEverySystemFinishesARoundAgainstRealProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs six binaries")
	}
	const redisServer = "/usr/bin/redis-server"
	if _, err := os.Stat(redisServer); err != nil {
		t.Skipf("no %s: %v", redisServer, err)
	}
	dir := t.TempDir()
	for pkg, name := range map[string]string{
		"github.com/nats-io/nats-server/v2":           "nats-server",
		"github.com/salvo-run/salvo/cmd/worker":       "worker",
		"github.com/salvo-run/salvo/cmd/mockupstream": "mockupstream",
		"github.com/salvo-run/salvo/bench/pipeline":   "pipeline",
		"github.com/salvo-run/salvo/bench/asynqbase":  "asynqbase",
	} {
		out, err := exec.CommandContext(t.Context(), "go", "build", "-o", filepath.Join(dir, name), pkg).CombinedOutput()
		require.NoError(t, err, "go build %s: %s", pkg, out)
	}
	b := binsIn(dir, redisServer)
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	p := &childproc.Set{Ctx: ctx, Logs: &testWriter{t}}
	defer p.KillAll()

	const n = 200
	g := &group{scenario: "test", title: "small", n: n, entries: []entry{
		{label: "salvo", sys: &salvo{b: b, concurrency: 8, workers: 1}, mockArgs: []string{}},
		{label: "pipeline", sys: &pipeline{b: b, handlers: 8}, mockArgs: []string{}},
		{label: "asynq", sys: &asynqBase{b: b, concurrency: 8}, mockArgs: []string{}},
	}}
	for _, e := range g.entries {
		f, err := measure(ctx, p, b, g, e, 1, 2*time.Minute)
		require.NoError(t, err, e.label)
		require.Positive(t, f.Measured, e.label)
		require.LessOrEqual(t, f.Measured, uint64(n), e.label)
		require.Positive(t, f.ReqPerS, e.label)
		require.Positive(t, f.PeakRSSMiB, e.label)
		for _, part := range []string{"sut", "nats-server", "redis-server", "mockupstream", "loadgen"} {
			require.Contains(t, f.CPUus, part, e.label)
		}
		require.Zero(t, p.Len(), "%s: every child process is gone after the round", e.label)
	}
}

// testWriter sends the child processes' output to the test log.
type testWriter struct{ t *testing.T }

func (w *testWriter) Write(b []byte) (int, error) {
	w.t.Log(string(b))
	return len(b), nil
}
