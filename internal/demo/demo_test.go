package demo_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/salvo-run/salvo/internal/demo"
	"github.com/salvo-run/salvo/internal/mockupstream"
	"github.com/salvo-run/salvo/internal/testlog"
	"github.com/salvo-run/salvo/internal/testnats"
	"github.com/salvo-run/salvo/internal/testredis"
	"github.com/salvo-run/salvo/internal/testupstream"
	"github.com/salvo-run/salvo/pkg/batchfile"
	"github.com/salvo-run/salvo/pkg/httpclient"
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
	require.Contains(t, b.out.String(), "rejected line 14: body.model: is required")
	checkWorkersAndSummary(t, b, sum)
}

// checkWorkersAndSummary asserts that both workers ended requests (their
// own salvo_requests_total, which counts each request once) and that the
// summary printed the wall time and the rate.
func checkWorkersAndSummary(t *testing.T, b *bundle, sum demo.Summary) {
	t.Helper()
	require.Len(t, sum.Shares, 2, "two workers")
	var ended int64
	for i, sh := range sum.Shares {
		require.Equal(t, fmt.Sprintf("demo-worker-%d", i+1), sh.Worker)
		require.Positive(t, sh.Ended, "%s ended no request: %+v", sh.Worker, sum.Shares)
		ended += sh.Ended
	}
	require.Equal(t, sum.Counts.Terminal(), ended, "the shares add up to the requests ended")
	require.Positive(t, sum.Wall)
	require.Positive(t, sum.Rate)
	out := b.out.String()
	require.Contains(t, out, "summary\n")
	require.Regexp(t, `(?m)^  batch     batch-\S+ completed: wall time [0-9]+\.[0-9]{2}s from submit to final, [0-9]+\.[0-9] req/s$`, out)
	require.Regexp(t, fmt.Sprintf(`(?m)^  workers   demo-worker-1 ended %d, demo-worker-2 ended %d `, sum.Shares[0].Ended, sum.Shares[1].Ended), out)
	require.Contains(t, out, "progress\n")
	require.Regexp(t, `(?m)^\[\s*[0-9.]+m?s\] batch-\S+ completed: 24/24 ended · completed 24`, out, "the producer's progress lines")
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
	require.GreaterOrEqual(t, sum.UpstreamCalls, int64(24))
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
		{"too many workers", func(o *demo.Options) { o.Workers = 17 }, "Workers 17 must be 1 to 16"},
		{"negative workers", func(o *demo.Options) { o.Workers = -1 }, "Workers -1"},
		{"upstream not http", func(o *demo.Options) { o.UpstreamURL = "ftp://u:hunter2@host/" }, "UpstreamURL is not a http|https:// URL"},
		{"upstream without host", func(o *demo.Options) { o.UpstreamURL = "https://" }, "UpstreamURL"},
		{"nats not nats", func(o *demo.Options) { o.NATSURL = "nats://127.0.0.1:4222,http://u:hunter2@h" }, "NATSURL is not a nats|tls|ws|wss:// URL"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := demo.Options{}.WithDefaults()
			tc.mod(&o)
			err := o.Validate()
			require.ErrorIs(t, err, demo.ErrInvalidOptions)
			require.True(t, strings.Contains(err.Error(), tc.want), err.Error())
			require.NotContains(t, err.Error(), "hunter2", "a URL's password is never shown")
		})
	}
}

// pathWithout is PATH without the directories that hold name.
func pathWithout(t *testing.T, name string) string {
	t.Helper()
	var keep []string
	for _, dir := range filepath.SplitList(os.Getenv("PATH")) {
		if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
			continue
		}
		keep = append(keep, dir)
	}
	return strings.Join(keep, string(filepath.ListSeparator))
}

// The clean-clone case CI checks with `make demo`: no redis-server on the
// PATH and no REDIS_URL. The demo falls back to its labelled stand-in,
// two workers both end requests, every input line's custom_id is in the
// output or the error file exactly once, and the summary has the wall
// time and the rate.
func TestRunWithoutRedisServerOnPath(t *testing.T) {
	t.Setenv("PATH", pathWithout(t, "redis-server"))
	t.Setenv("REDIS_URL", "")
	_, err := exec.LookPath("redis-server")
	require.Error(t, err, "redis-server is still on PATH")

	b := setup(t, demo.RedisAuto)
	sum, err := demo.Run(context.Background(), b.opts)
	require.NoError(t, err, b.out.String())
	checkRun(t, b, sum)
	require.True(t, sum.StandIn)
	require.Contains(t, b.out.String(), "!!! DEV STAND-IN (miniredis), not a real Redis !!!")
	require.Contains(t, b.out.String(), "no REDIS_URL and no redis-server on PATH")

	// Every custom_id of the input, good or bad, exactly once across the
	// two files.
	f, err := os.Open(exampleInput)
	require.NoError(t, err)
	defer f.Close()
	var want []string
	dec := json.NewDecoder(f)
	for dec.More() {
		var line struct {
			CustomID string `json:"custom_id"`
		}
		require.NoError(t, dec.Decode(&line))
		want = append(want, line.CustomID)
	}
	require.Len(t, want, 25)
	seen := map[string]int{}
	for _, path := range []string{b.opts.Output, b.opts.Errors} {
		for _, l := range readLines(t, path) {
			seen[l.CustomID]++
		}
	}
	for _, id := range want {
		require.Equal(t, 1, seen[id], "custom_id %s", id)
	}
	require.Len(t, seen, len(want), "no custom_id that is not in the input")
}

// Pointed at an existing NATS and an OpenAI-compatible upstream (here the
// mock on its own port, standing for a real endpoint): the demo starts no
// nats-server of its own, sends the key as a bearer token and never
// prints it, replaces every request's model, and deletes its streams from
// the server at the end.
func TestRunOnExternalNATSAndUpstream(t *testing.T) {
	ns := testnats.New(t)
	// Some latency, as a real endpoint has: neither worker can then take
	// every request before the other's pull is served.
	up := testupstream.New(t, mockupstream.Options{Record: true, Script: mockupstream.Script{
		Latency: &mockupstream.Latency{Min: 20 * time.Millisecond, Max: 60 * time.Millisecond},
	}})
	const key, model = "sk-demo-do-not-print-4711", "served/model-1"
	b := setup(t, demo.RedisMiniredis)
	b.opts.NATSURL = ns.URL()
	b.opts.UpstreamURL = up.URL()
	b.opts.APIKey = httpclient.Secret(key)
	b.opts.Model = model
	var logs testlog.Buffer // written by both workers at once
	log := zerolog.New(&logs).Level(zerolog.DebugLevel)
	b.opts.Logger = &log

	sum, err := demo.Run(context.Background(), b.opts)
	require.NoError(t, err, b.out.String())
	checkRun(t, b, sum)
	require.Zero(t, sum.UpstreamCalls, "no mock of the demo's own")
	out := b.out.String()
	require.NotContains(t, out, "embedded nats-server")
	require.Contains(t, out, "NATS_URL at "+ns.URL())
	require.Contains(t, out, up.URL()+" (SALVO_DEMO_UPSTREAM_URL), bearer key from OPENAI_API_KEY")
	require.Contains(t, out, `every request's body.model set to "served/model-1"`)
	require.NotContains(t, out, key)
	require.NotContains(t, logs.String(), key)

	for _, l := range readLines(t, b.opts.Output) {
		calls := up.Received(l.ID)
		require.NotEmpty(t, calls, l.CustomID)
		require.Equal(t, "Bearer "+key, calls[0].Header.Get("Authorization"), l.CustomID)
		var body struct {
			Model string `json:"model"`
		}
		require.NoError(t, json.Unmarshal(calls[0].Body, &body))
		require.Equal(t, model, body.Model, l.CustomID)
	}

	nc := ns.Connect()
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	names := js.StreamNames(context.Background())
	var left []string
	for n := range names.Name() {
		left = append(left, n)
	}
	require.NoError(t, names.Err())
	require.Empty(t, left, "the demo's streams are deleted from the server")
}
