package demo_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/salvo-run/salvo/internal/demo"
	"github.com/salvo-run/salvo/internal/testredis"
	"github.com/salvo-run/salvo/pkg/batchfile"
	"github.com/salvo-run/salvo/pkg/lifecycle"
)

const exampleInput = "../../examples/batch.jsonl"

// bundle is one run's options and where its output went.
type bundle struct {
	opts demo.Options
	out  *bytes.Buffer
}

func setup(t *testing.T, mode demo.RedisMode) *bundle {
	t.Helper()
	dir := t.TempDir()
	log := zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)
	b := &bundle{out: new(bytes.Buffer)}
	b.opts = demo.Options{
		Input:   exampleInput,
		Output:  filepath.Join(dir, "out", "output.jsonl"),
		Errors:  filepath.Join(dir, "out", "errors.jsonl"),
		Redis:   mode,
		Timeout: 60 * time.Second, // generous for a shared 2-core machine; a run takes a few seconds
		Out:     b.out,
		Logger:  &log,
	}
	if mode == demo.RedisURLMode {
		b.opts.RedisURL = os.Getenv("REDIS_URL")
	}
	return b
}

// goodLines parses the example with pkg/batchfile and returns the
// custom ids of its good lines, in order, and its line errors.
func goodLines(t *testing.T) ([]string, []*batchfile.LineError) {
	t.Helper()
	f, err := os.Open(exampleInput)
	require.NoError(t, err)
	defer f.Close()
	p, err := batchfile.Parse(f, batchfile.ParseOptions{BatchID: "check"})
	require.NoError(t, err)
	ids := make([]string, 0, len(p.Requests))
	for _, l := range p.Requests {
		ids = append(ids, l.Request.CustomID)
	}
	return ids, p.Errors
}

func readLines(t *testing.T, path string) []batchfile.OutputLine {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	lines, err := batchfile.ReadOutput(f)
	require.NoError(t, err)
	return lines
}

// checkRun asserts what every successful run must leave: one completed
// output line per good input line, in input order, each request once; the
// bad line in the error file with its line number; exact counters.
func checkRun(t *testing.T, b *bundle, sum demo.Summary) {
	t.Helper()
	wantIDs, wantErrs := goodLines(t)
	require.Len(t, wantIDs, 24, "the example has 24 good lines")
	require.Len(t, wantErrs, 1, "the example has one bad line")

	out := readLines(t, b.opts.Output)
	require.Len(t, out, len(wantIDs), "exactly one output line per good input line")
	seen := map[string]bool{}
	for i, l := range out {
		require.Equal(t, wantIDs[i], l.CustomID, "output line %d in input order", i+1)
		require.False(t, seen[l.ID], "request %s written once", l.ID)
		seen[l.ID] = true
		require.Nil(t, l.Error, l.CustomID)
		require.NotNil(t, l.Response, l.CustomID)
		require.Equal(t, 200, l.Response.StatusCode, l.CustomID)
		require.Equal(t, l.ID, l.Response.RequestID)
		require.Contains(t, string(l.Response.Body), `"object":"chat.completion"`, l.CustomID)
	}

	errs := readLines(t, b.opts.Errors)
	require.Len(t, errs, 1, "only the bad input line is in the error file")
	require.Equal(t, batchfile.OutputLine{CustomID: "request-bad", Error: &batchfile.OutputError{
		Code: batchfile.CodeInvalidRequest, Message: "line 14: body.model: is required", Line: 14, Param: "body.model",
	}}, errs[0])

	require.Equal(t, lifecycle.BatchCompleted, sum.Status)
	require.Equal(t, lifecycle.Counts{Total: 24, Completed: 24}, sum.Counts)
	require.Equal(t, 25, sum.Lines)
	require.Equal(t, 1, sum.LineErrors)
	require.Equal(t, 24, sum.Requests)
	require.Equal(t, 24, sum.Results)
	require.Equal(t, 24, sum.OutputLines)
	require.Equal(t, 1, sum.ErrorLines)
	require.GreaterOrEqual(t, sum.UpstreamCalls, int64(24))
	require.Contains(t, b.out.String(), "rejected line 14: body.model: is required")
	require.Contains(t, b.out.String(), "summary\n")
}

// The demo end to end on a real Redis: the redis-server the test harness
// uses (spawned by the demo itself), or REDIS_URL when set.
func TestRunOnRealRedis(t *testing.T) {
	mode := demo.RedisServer
	if os.Getenv("REDIS_URL") != "" {
		mode = demo.RedisURLMode
	} else if _, err := testredis.Path(); err != nil {
		t.Fatalf("redis-server not on PATH (install it, e.g. apt-get install -y redis-server, or set REDIS_URL): %v", err)
	}
	b := setup(t, mode)
	sum, err := demo.Run(context.Background(), b.opts)
	require.NoError(t, err, b.out.String())
	checkRun(t, b, sum)
	require.False(t, sum.StandIn)
	require.NotContains(t, b.out.String(), "STAND-IN")
	if mode == demo.RedisServer {
		require.Contains(t, sum.Redis, "redis-server")
	}
}

// The same run on the in-process stand-in: it says so loudly, and it
// passes the store checks, so the results are the real package's.
func TestRunOnMiniredisStandIn(t *testing.T) {
	b := setup(t, demo.RedisMiniredis)
	sum, err := demo.Run(context.Background(), b.opts)
	require.NoError(t, err, b.out.String())
	checkRun(t, b, sum)
	require.True(t, sum.StandIn)
	require.Contains(t, sum.Redis, demo.StandInLabel)
	require.Contains(t, b.out.String(), "!!! DEV STAND-IN (miniredis), not a real Redis !!!")
	require.Contains(t, b.out.String(), "pkg/state scripts checked on it")
}

// A run that cannot finish in time ends with ErrTimeout and stops
// everything it started (goleak checks the rest).
func TestRunIsBounded(t *testing.T) {
	b := setup(t, demo.RedisMiniredis)
	b.opts.Timeout = time.Millisecond
	_, err := demo.Run(context.Background(), b.opts)
	require.ErrorIs(t, err, demo.ErrTimeout)
	_, statErr := os.Stat(b.opts.Output)
	require.True(t, os.IsNotExist(statErr), "no output file from an unfinished run")
}

func TestRunRefusesInputWithoutGoodLines(t *testing.T) {
	b := setup(t, demo.RedisMiniredis)
	b.opts.Input = filepath.Join(t.TempDir(), "bad.jsonl")
	require.NoError(t, os.WriteFile(b.opts.Input, []byte("{\"custom_id\":\"x\"}\n\nnot json\n"), 0o600))
	_, err := demo.Run(context.Background(), b.opts)
	require.ErrorContains(t, err, "has no valid request")
	out := b.out.String()
	require.Contains(t, out, "rejected line 1: method: is required")
	require.Contains(t, out, "rejected line 3: invalid JSON")
	require.NotContains(t, out, "  batch ", "no batch is created for an input without requests")
	_, statErr := os.Stat(b.opts.Output)
	require.True(t, os.IsNotExist(statErr), "no output file for an input without requests")
}

func TestOptionsValidate(t *testing.T) {
	tests := []struct {
		name string
		mod  func(*demo.Options)
		want string
	}{
		{"same files", func(o *demo.Options) { o.Errors = o.Output }, "Output and Errors must be different"},
		{"bad mode", func(o *demo.Options) { o.Redis = "cluster" }, `Redis "cluster"`},
		{"url mode without url", func(o *demo.Options) { o.Redis = demo.RedisURLMode }, "RedisURL is required"},
		{"negative timeout", func(o *demo.Options) { o.Timeout = -time.Second }, "Timeout"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := demo.Options{}.WithDefaults()
			tc.mod(&o)
			err := o.Validate()
			require.ErrorIs(t, err, demo.ErrInvalidOptions)
			require.True(t, strings.Contains(err.Error(), tc.want), err.Error())
		})
	}
}
