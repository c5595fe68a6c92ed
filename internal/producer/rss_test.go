package producer_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/salvo-run/salvo/internal/config"
	"github.com/salvo-run/salvo/internal/mockupstream"
	"github.com/salvo-run/salvo/internal/testbin"
	"github.com/salvo-run/salvo/internal/testnats"
	"github.com/salvo-run/salvo/internal/testredis"
	"github.com/salvo-run/salvo/internal/testupstream"
	"github.com/salvo-run/salvo/pkg/client"
	"github.com/salvo-run/salvo/pkg/httpclient"
	"github.com/salvo-run/salvo/pkg/lifecycle"
)

// TestProducerPeakRSS measures the peak RSS of `producer submit` and
// `producer results` (each its own process) on a 100,000-line input of
// about 200 MB. A recorded run, not part of `make test`: run it with
// `make bench-producer` (SALVO_BENCH_PRODUCER=1); the figures go to
// docs/BENCHMARKS.md.
func TestProducerPeakRSS(t *testing.T) {
	if os.Getenv("SALVO_BENCH_PRODUCER") == "" {
		t.Skip("set SALVO_BENCH_PRODUCER=1 (make bench-producer)")
	}
	const (
		n        = 100_000
		lineSize = 2000
	)
	ns, rd := testnats.New(t), testredis.New(t)
	mock := testupstream.New(t, mockupstream.Options{})
	set := config.Default()
	set.NATSURL, set.RedisURL, set.Prefix = ns.URL(), rd.URL(), rd.Prefix
	set.Streams.DiscoveryInterval = 100 * time.Millisecond
	set.Worker.ShutdownGrace = time.Second
	set.Worker.Concurrency.Default = 256
	set.Upstream.Default = &httpclient.Route{BaseURL: mock.URL(), APIKeyEnv: "K"}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	p, err := config.Start(ctx, set, config.Options{Getenv: func(string) string { return "sk-test" }})
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Stop(context.Background()) })

	dir := t.TempDir()
	path := filepath.Join(dir, "big.jsonl")
	f, err := os.Create(path)
	require.NoError(t, err)
	w := bufio.NewWriterSize(f, 1<<20)
	for i := 1; i <= n; i++ {
		head := fmt.Sprintf(`{"custom_id":"row-%d","method":"POST","url":"/v1/chat/completions","body":{"model":"gpt-4o-mini","messages":[{"role":"user","content":"`, i)
		tail := `"}]}}`
		fmt.Fprint(w, head, strings.Repeat("x", lineSize-len(head)-len(tail)), tail, "\n")
	}
	require.NoError(t, w.Flush())
	require.NoError(t, f.Close())
	st, err := os.Stat(path)
	require.NoError(t, err)

	run := func(args ...string) (peak testbin.PeakRSS, wall time.Duration) {
		t.Helper()
		cmd := exec.CommandContext(ctx, testbin.Producer(t), append(args, "--server", ns.URL(), "--prefix", rd.Prefix)...)
		var outBuf strings.Builder
		cmd.Stdout, cmd.Stderr = &outBuf, &outBuf
		start := time.Now()
		require.NoError(t, cmd.Start())
		stop := make(chan struct{})
		polled := make(chan testbin.PeakRSS)
		go func() { polled <- testbin.PollRSS(cmd.Process.Pid, stop) }()
		err := cmd.Wait()
		close(stop)
		peak = <-polled
		out := outBuf.String()
		require.NoError(t, err, "%s", out)
		if os.Getenv("SALVO_BENCH_PRODUCER_LOG") != "" {
			t.Logf("%s", out)
		}
		return peak, time.Since(start)
	}
	// Above OpenAI's 50,000 requests: salvo's own ceiling is higher.
	submitRSS, submitWall := run("submit", path, "--batch-id", "b-big", "--max-requests", "100000", "--max-bytes", "250000000")
	c := client.New(ns.Connect(), rd.Prefix)
	require.Eventually(t, func() bool {
		b, err := c.Batch(ctx, "b-big")
		return err == nil && b.Status == string(lifecycle.BatchCompleted)
	}, 15*time.Minute, time.Second)
	resultsRSS, resultsWall := run("results", "b-big", "--output", filepath.Join(dir, "out.jsonl"), "--errors", filepath.Join(dir, "err.jsonl"),
		"--input", path, "--max-requests", "100000", "--max-bytes", "250000000")
	outSt, err := os.Stat(filepath.Join(dir, "out.jsonl"))
	require.NoError(t, err)
	t.Logf("input %d lines, %.1f MB; output %.1f MB", n, float64(st.Size())/1e6, float64(outSt.Size())/1e6)
	// The floor, in the same run: the same binary doing one API call.
	floorRSS, _ := run("status", "b-big")
	t.Logf("producer status:  %s (the floor: one API call)", floorRSS)
	t.Logf("producer submit:  %s; %s", submitRSS, submitWall.Round(time.Millisecond))
	t.Logf("producer results: %s; %s", resultsRSS, resultsWall.Round(time.Millisecond))
	// The bound: a 200 MB / 100,000-line file under 100 MiB.
	require.Less(t, submitRSS.HWMKiB, 100*1024, "producer submit's peak RSS")
	require.Less(t, resultsRSS.HWMKiB, 100*1024, "producer results' peak RSS")
}
