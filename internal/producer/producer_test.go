package producer_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/trace"

	"github.com/salvo-run/salvo/internal/config"
	"github.com/salvo-run/salvo/internal/mockupstream"
	"github.com/salvo-run/salvo/internal/producer"
	"github.com/salvo-run/salvo/internal/testbin"
	"github.com/salvo-run/salvo/internal/testleak"
	"github.com/salvo-run/salvo/internal/testnats"
	"github.com/salvo-run/salvo/internal/testredis"
	"github.com/salvo-run/salvo/internal/testupstream"
	"github.com/salvo-run/salvo/pkg/batchfile"
	"github.com/salvo-run/salvo/pkg/client"
	"github.com/salvo-run/salvo/pkg/httpclient"
	"github.com/salvo-run/salvo/pkg/lifecycle"
	"github.com/salvo-run/salvo/pkg/queue"
	"github.com/salvo-run/salvo/pkg/worker"
)

func TestMain(m *testing.M) {
	testleak.VerifyTestMainThen(m, testbin.Remove) // the producer binary the child-process tests ran
}

// stack is one worker process in-process, on its own NATS and Redis.
type stack struct {
	nats   *testnats.Server
	prefix string
	nc     *nats.Conn
}

func newStack(t *testing.T) *stack {
	t.Helper()
	// "big-model" answers with a body larger than a NATS message: its
	// result is stored by reference in the object store.
	s, _ := newStackWith(t, mockupstream.Options{Models: map[string]mockupstream.Script{
		"big-model": {ReplyWords: 300_000},
	}}, nil)
	return s
}

// newStackWith is newStack with its own mock upstream options and a change
// to the worker's settings.
func newStackWith(t *testing.T, mo mockupstream.Options, mod func(*config.Settings)) (*stack, *mockupstream.Server) {
	t.Helper()
	return startStack(t, mo, mod, nil)
}

// startStack is newStackWith with a worker that makes its spans with tp
// (nil: none).
func startStack(t *testing.T, mo mockupstream.Options, mod func(*config.Settings), tp trace.TracerProvider) (*stack, *mockupstream.Server) {
	t.Helper()
	ns, rd := testnats.New(t), testredis.New(t)
	mock := testupstream.New(t, mo)
	set := config.Default()
	set.NATSURL, set.RedisURL, set.Prefix = ns.URL(), rd.URL(), rd.Prefix
	set.Streams.DiscoveryInterval = 100 * time.Millisecond
	set.Worker.ShutdownGrace = time.Second
	set.Upstream.Default = &httpclient.Route{BaseURL: mock.URL(), APIKeyEnv: "K"}
	if mod != nil {
		mod(&set)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := config.Start(ctx, set, config.Options{Getenv: func(string) string { return "sk-test" }, Tracer: tp})
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Stop(context.Background()) })
	return &stack{nats: ns, prefix: rd.Prefix, nc: ns.Connect()}, mock
}

// waitCompleted waits until batch id is completed.
func (s *stack) waitCompleted(ctx context.Context, t *testing.T, id string) {
	t.Helper()
	c := client.New(s.nc, s.prefix)
	require.Eventually(t, func() bool {
		b, err := c.Batch(ctx, id)
		return err == nil && b.Status == string(lifecycle.BatchCompleted)
	}, time.Minute, 50*time.Millisecond)
}

// writeFile writes n request lines; bad lists line numbers (1-based) to
// break, each in a different way.
func writeFile(t *testing.T, n int, bad ...int) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "batch.jsonl")
	f, err := os.Create(path)
	require.NoError(t, err)
	w := bufio.NewWriter(f)
	broken := map[int]string{}
	breakers := []string{
		`{"custom_id":"row-%d","method":"POST","url":"/v1/chat/completions","body":{"messages":[]}}`,            // no model
		`{"custom_id":"row-%d","method":"GET","url":"/v1/chat/completions","body":{"model":"m","messages":[]}}`, // GET
		`{"custom_id":"row-%d","method":"POST","url":"/v1/chat/completions","body":{"model":"m","messages":[]}`, // truncated JSON
		`{"custom_id":"row-%d","method":"POST","url":"/v1/embeddings","body":{"model":"m","input":"x"}}`,        // other endpoint
	}
	for i, line := range bad {
		broken[line] = breakers[i%len(breakers)]
	}
	for i := 1; i <= n; i++ {
		format := `{"custom_id":"row-%d","method":"POST","url":"/v1/chat/completions","body":{"model":"gpt-4o-mini","messages":[{"role":"user","content":"q"}]}}`
		if b, ok := broken[i]; ok {
			format = b
		}
		fmt.Fprintf(w, format+"\n", i)
	}
	require.NoError(t, w.Flush())
	require.NoError(t, f.Close())
	return path
}

// requestsStored counts every request message the REQUESTS stream ever
// stored (acked ones leave a work queue; the last sequence stays).
func (s *stack) requestsStored(t *testing.T) uint64 {
	t.Helper()
	q, err := queue.New(s.nc, queue.Config{Prefix: s.prefix}, zerolog.Nop())
	require.NoError(t, err)
	js, err := jetstream.New(s.nc)
	require.NoError(t, err)
	st, err := js.Stream(context.Background(), q.RequestsStream())
	require.NoError(t, err)
	info, err := st.Info(context.Background())
	require.NoError(t, err)
	return info.State.LastSeq
}

// TestSubmitRefusesAFileWithBadLinesThenRunsItFixed: a file with 3 bad
// lines is refused naming the 3 lines and their fields, with nothing
// created or published; the fixed file runs to completion and its output
// file has every line in input order. (cmd/producer's
// TestSubmitTenThousandLines runs the same through the CLI at 10,000.)
func TestSubmitRefusesAFileWithBadLinesThenRunsItFixed(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	const n = 2_000
	s := newStack(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	bad := writeFile(t, n, 17, 1042, 1999)
	_, err := producer.Submit(ctx, s.nc, producer.SubmitOptions{Path: bad, BatchID: "b-2k", Prefix: s.prefix})
	var inv *producer.InvalidFileError
	require.ErrorAs(t, err, &inv)
	lines := []int{}
	for _, le := range inv.Errors {
		lines = append(lines, le.Line)
	}
	require.Equal(t, []int{17, 1042, 1999}, lines)
	require.Equal(t, "body.model", inv.Errors[0].Field)
	require.Equal(t, "method", inv.Errors[1].Field)
	require.Contains(t, err.Error(), "line 1042")
	require.Zero(t, s.requestsStored(t), "nothing published")
	_, err = client.New(s.nc, s.prefix).Batch(ctx, "b-2k")
	require.True(t, client.IsCode(err, "not_found"), "no batch was created: %v", err)

	good := writeFile(t, n)
	res, err := producer.Submit(ctx, s.nc, producer.SubmitOptions{Path: good, BatchID: "b-2k", Prefix: s.prefix})
	require.NoError(t, err)
	require.Equal(t, n, res.Requests)
	require.Equal(t, n, res.Published)
	c := client.New(s.nc, s.prefix)
	require.Eventually(t, func() bool {
		b, err := c.Batch(ctx, "b-2k")
		return err == nil && b.Status == string(lifecycle.BatchCompleted)
	}, 90*time.Second, 100*time.Millisecond)

	dir := t.TempDir()
	out, errs := filepath.Join(dir, "out.jsonl"), filepath.Join(dir, "errors.jsonl")
	w, err := producer.WriteResults(ctx, s.nc, producer.ResultsOptions{BatchID: "b-2k", Output: out, Errors: errs, Prefix: s.prefix})
	require.NoError(t, err)
	require.Equal(t, n, w.Output)
	require.Zero(t, w.Errors)
	f, err := os.Open(out)
	require.NoError(t, err)
	defer f.Close()
	got, err := batchfile.ReadOutput(f)
	require.NoError(t, err)
	require.Len(t, got, n)
	for i, l := range got {
		require.Equal(t, fmt.Sprintf("row-%d", i+1), l.CustomID, "output line %d", i+1)
		require.Equal(t, 200, l.Response.StatusCode)
	}
}

// TestSkipInvalidSubmitsTheGoodLinesAndReportsTheRest: the bad lines go to
// the error file at their line, keeping their custom_id.
func TestSkipInvalidSubmitsTheGoodLinesAndReportsTheRest(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	s := newStack(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	path := writeFile(t, 50, 3, 20, 40, 41)
	res, err := producer.Submit(ctx, s.nc, producer.SubmitOptions{Path: path, BatchID: "b-skip", SkipInvalid: true, Prefix: s.prefix})
	require.NoError(t, err)
	require.Equal(t, 46, res.Requests)
	require.Len(t, res.Rejected, 4)
	require.EqualValues(t, 46, res.Batch.RequestCounts.Total)
	s.waitCompleted(ctx, t, "b-skip")
	dir := t.TempDir()
	errs := filepath.Join(dir, "errors.jsonl")
	w, err := producer.WriteResults(ctx, s.nc, producer.ResultsOptions{BatchID: "b-skip", Output: filepath.Join(dir, "out.jsonl"), Errors: errs, Input: path, Prefix: s.prefix})
	require.NoError(t, err)
	require.Equal(t, 46, w.Output)
	require.Equal(t, 4, w.Errors)
	f, err := os.Open(errs)
	require.NoError(t, err)
	defer f.Close()
	lines, err := batchfile.ReadOutput(f)
	require.NoError(t, err)
	for i, want := range []int{3, 20, 40, 41} {
		require.Equal(t, want, lines[i].Error.Line)
		if want == 40 {
			require.Empty(t, lines[i].CustomID, "truncated JSON has no readable custom_id")
			continue
		}
		require.Equal(t, fmt.Sprintf("row-%d", want), lines[i].CustomID)
	}
	require.Equal(t, "url", lines[3].Error.Param, "line 41 names another endpoint")
}

// TestSubmitAgainPublishesNothingNew: the same batch id and file submitted
// twice reuse the batch; once it has finished nothing is published.
func TestSubmitAgainPublishesNothingNew(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	s := newStack(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	path := writeFile(t, 20)
	_, err := producer.Submit(ctx, s.nc, producer.SubmitOptions{Path: path, BatchID: "b-again", Prefix: s.prefix})
	require.NoError(t, err)
	s.waitCompleted(ctx, t, "b-again")
	stored := s.requestsStored(t)
	require.EqualValues(t, 20, stored)
	res, err := producer.Submit(ctx, s.nc, producer.SubmitOptions{Path: path, BatchID: "b-again", Prefix: s.prefix})
	require.NoError(t, err)
	require.Zero(t, res.Published)
	require.Equal(t, string(lifecycle.BatchCompleted), res.Batch.Status)
	require.Equal(t, stored, s.requestsStored(t), "nothing new in REQUESTS")

	_, err = producer.Submit(ctx, s.nc, producer.SubmitOptions{Path: path, BatchID: "b-again", CompletionWindow: "1h", Prefix: s.prefix})
	require.True(t, client.IsCode(err, "conflict"), "another window is another batch: %v", err)
	require.Contains(t, err.Error(), "completion_window")
}

// TestResultsResolveBodiesStoredInTheObjectStore: a response too large for
// one NATS message is stored by reference; the output file carries the
// whole body.
func TestResultsResolveBodiesStoredInTheObjectStore(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	s := newStack(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	path := filepath.Join(t.TempDir(), "big.jsonl")
	require.NoError(t, os.WriteFile(path, []byte(
		`{"custom_id":"small","method":"POST","url":"/v1/chat/completions","body":{"model":"gpt-4o-mini","messages":[]}}`+"\n"+
			`{"custom_id":"big","method":"POST","url":"/v1/chat/completions","body":{"model":"big-model","messages":[]}}`+"\n"), 0o600))
	_, err := producer.Submit(ctx, s.nc, producer.SubmitOptions{Path: path, BatchID: "b-ref", Prefix: s.prefix})
	require.NoError(t, err)
	s.waitCompleted(ctx, t, "b-ref")
	out := filepath.Join(t.TempDir(), "out.jsonl")
	w, err := producer.WriteResults(ctx, s.nc, producer.ResultsOptions{BatchID: "b-ref", Output: out, Prefix: s.prefix})
	require.NoError(t, err)
	require.Equal(t, 2, w.Output)
	f, err := os.Open(out)
	require.NoError(t, err)
	defer f.Close()
	lines, err := batchfile.ReadOutput(f)
	require.NoError(t, err)
	require.Equal(t, "big", lines[1].CustomID)
	require.Greater(t, len(lines[1].Response.Body), int(s.nc.MaxPayload()), "the whole body, fetched from the object store")
}

// With racing copies (escalation, mode race), the stream can hold two
// lines for one request: its failure, published first, then its copy's
// completed line. The output files have one line per custom_id: the
// completed one, in the output file, and nothing in the error file; the
// request whose original completed first has its own line.
func TestOutputFilesHaveOneLinePerCustomIDWhenACopyOverturnsAFailure(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	s, mock := newStackWith(t, mockupstream.Options{Models: map[string]mockupstream.Script{
		"fast": {Latency: &mockupstream.Latency{Min: time.Second}},
	}}, func(set *config.Settings) {
		set.Worker.Escalations = worker.Escalations{"gpt-4o-mini": {Model: "fast", Threshold: 48 * time.Hour, Mode: worker.EscalateRace}}
	})
	mock.SetSequence("b-esc-1", 400) // line 1's original fails at once
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := producer.Submit(ctx, s.nc, producer.SubmitOptions{Path: writeFile(t, 2), BatchID: "b-esc", Prefix: s.prefix})
	require.NoError(t, err)
	s.waitCompleted(ctx, t, "b-esc")

	dir := t.TempDir()
	out, errs := filepath.Join(dir, "out.jsonl"), filepath.Join(dir, "errors.jsonl")
	w, err := producer.WriteResults(ctx, s.nc, producer.ResultsOptions{BatchID: "b-esc", Output: out, Errors: errs, Prefix: s.prefix})
	require.NoError(t, err)
	require.Equal(t, producer.Written{Output: 2, Status: lifecycle.BatchCompleted}, w)
	f, err := os.Open(out)
	require.NoError(t, err)
	defer f.Close()
	lines, err := batchfile.ReadOutput(f)
	require.NoError(t, err)
	require.Len(t, lines, 2)
	require.Equal(t, "row-1", lines[0].CustomID)
	require.Equal(t, "row-2", lines[1].CustomID)
	require.Equal(t, 200, lines[0].Response.StatusCode, "line 1: its copy's completed line replaced the failure")
}
