package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"
	"github.com/stretchr/testify/require"

	"github.com/salvo-run/salvo/internal/producer"
	"github.com/salvo-run/salvo/internal/testlog"
	"github.com/salvo-run/salvo/pkg/api"
	"github.com/salvo-run/salvo/pkg/lifecycle"
)

// progressCount matches a bar frame's "(ended/total".
var progressCount = regexp.MustCompile(`\((\d+)/(\d+)`)

// On a terminal (a pty), watch draws a progress bar that moves with the
// batch: the test publishes half the requests, waits until a frame shows
// them ended, then publishes the rest; the frames show at least two
// different counts and the summary follows the bar.
func TestWatchOnATerminalDrawsAMovingProgressBar(t *testing.T) {
	t.Parallel()
	d := newDeployment(t)
	const id, total = "tty-1", 20
	d.createBatch(t, id, total, nil)
	d.publish(t, id, 0, total/2)

	ptmx, tty, err := pty.Open()
	require.NoError(t, err)
	require.NoError(t, pty.Setsize(ptmx, &pty.Winsize{Rows: 40, Cols: 160}))
	var screen testlog.Buffer
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		_, _ = io.Copy(&screen, ptmx) // ends with EIO once the tty is closed
	}()
	t.Cleanup(func() {
		_ = tty.Close()
		<-copied
		_ = ptmx.Close()
	})
	require.True(t, producer.IsTerminal(tty), "a pty is a terminal")

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	done := make(chan int, 1)
	var errOut testlog.Buffer
	go func() {
		done <- run(ctx, []string{"watch", id, "--interval", "20ms"}, testIO(tty, &errOut, d.env()))
	}()

	require.Eventually(t, func() bool {
		return strings.Contains(screen.String(), "(10/20")
	}, 30*time.Second, 10*time.Millisecond, "the bar shows half the batch ended: %q", screen.String())
	d.publish(t, id, total/2, total)

	var code int
	select {
	case code = <-done:
	case <-ctx.Done():
		t.Fatalf("watch did not end: %q", screen.String())
	}
	require.Equal(t, exitOK, code, errOut.String())
	require.Eventually(t, func() bool {
		return strings.Contains(screen.String(), "results: 20 published, 0 missing")
	}, 5*time.Second, 10*time.Millisecond)

	out := screen.String()
	t.Logf("terminal output: %q", out)
	seen := map[int]bool{}
	for _, m := range progressCount.FindAllStringSubmatch(out, -1) {
		require.Equal(t, strconv.Itoa(total), m[2], "frames count out of the total")
		n, _ := strconv.Atoi(m[1])
		seen[n] = true
	}
	require.GreaterOrEqual(t, len(seen), 2, "the bar moved: %v", seen)
	require.True(t, seen[total], "the last frame is full")
	require.Contains(t, out, "\r", "frames redraw one line")
	require.Contains(t, out, "completed 10", "the description counts by state")
	require.Regexp(t, `batch tty-1 completed in [0-9.]+m?s: 20 request\(s\), completed 20, failed 0`, out)
	require.Regexp(t, `[0-9.]+ req/s`, out)
}

// Piped (not a terminal), watch prints plain lines, no bar, and the
// summary.
func TestWatchPipedPrintsPlainLinesAndTheSummary(t *testing.T) {
	t.Parallel()
	d := newDeployment(t)
	d.createBatch(t, "pipe-1", 30, nil)
	d.publish(t, "pipe-1", 0, 30)

	r := cli(t, d.env(), "watch", "pipe-1", "--interval", "20ms")
	require.Equal(t, exitOK, r.code)
	require.NotContains(t, r.out, "\r", "no bar frames")
	require.NotContains(t, r.out, "\x1b[", "no escape sequences")
	require.Regexp(t, `(?m)^\[\s*[0-9.]+m?s\] pipe-1 (validating|in_progress|finalizing|completed): \d+/30 ended · `, r.out)
	require.Regexp(t, `(?m)^\[\s*[0-9.]+m?s\] pipe-1 completed: 30/30 ended · completed 30`, r.out)
	// The watch saw requests already ended, so the wall time is the batch's
	// own, in whole seconds: a batch that ran inside one second shows 0s
	// and no rate.
	require.Regexp(t, `(?m)^batch pipe-1 completed in ([0-9.]+m?s: 30 request\(s\), completed 30, failed 0, expired 0, canceled 0, superseded 0; [0-9.]+|0s: 30 request\(s\), completed 30, failed 0, expired 0, canceled 0, superseded 0; -) req/s$`, r.out)
	require.Contains(t, r.out, "results: 30 published, 0 missing")

	r = cli(t, d.env(), "watch", "--json", "pipe-1")
	require.Equal(t, exitOK, r.code)
	var b api.BatchObject
	require.NoError(t, json.Unmarshal([]byte(r.out), &b), "--json: stdout is the batch object alone")
	require.Equal(t, "completed", b.Status)
	require.Contains(t, r.err, "batch pipe-1 completed in", "the progress and summary go to stderr")
}

// The watch function on its own: while nothing moves it prints the first
// line, and a cancelled context (SIGINT) ends it with errInterrupted,
// which is exit 130; the batch keeps running.
func TestWatchEndsWhenInterrupted(t *testing.T) {
	t.Parallel()
	d := newDeployment(t)
	d.createBatch(t, "stuck-1", 5, nil)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out testlog.Buffer
	w := &producer.Watcher{Client: d.client, BatchID: "stuck-1", Out: &out, Interval: 10 * time.Millisecond, CallTimeout: 5 * time.Second}
	type ret struct{ err error }
	done := make(chan ret, 1)
	go func() {
		_, err := w.Run(ctx)
		done <- ret{err}
	}()
	require.Eventually(t, func() bool { return strings.Contains(out.String(), "stuck-1 validating: 0/5 ended · pending 5") },
		10*time.Second, 5*time.Millisecond)
	cancel()
	got := <-done
	require.True(t, errors.Is(got.err, errInterrupted), "%v", got.err)
	require.Equal(t, exitInterrupted, exitCode(ctx, got.err, true))
	require.Contains(t, out.String(), "interrupted: batch stuck-1 is validating and keeps running")
	d.waitStatus(t, "stuck-1", lifecycle.BatchValidating)
}
