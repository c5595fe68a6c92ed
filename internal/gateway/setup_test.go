package gateway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/salvo-run/salvo/internal/config"
	"github.com/salvo-run/salvo/internal/gateway"
	"github.com/salvo-run/salvo/internal/mockupstream"
	"github.com/salvo-run/salvo/internal/telemetry"
	"github.com/salvo-run/salvo/internal/testleak"
	"github.com/salvo-run/salvo/internal/testlog"
	"github.com/salvo-run/salvo/internal/testnats"
	"github.com/salvo-run/salvo/internal/testredis"
	"github.com/salvo-run/salvo/internal/testupstream"
	"github.com/salvo-run/salvo/pkg/httpclient"
)

// No ignores: the gateway's Close waits for its background work, the
// in-process worker's Stop for its own, and each test's HTTP client
// closes its idle connections.
func TestMain(m *testing.M) { testleak.VerifyTestMain(m) }

// The tenants' bearer keys. They are long and distinctive so that a
// search of the logs and of the stores for them cannot miss or
// mismatch.
const (
	keyA = "sk-a-3b9f0c1e7d2a45c8b6e1f0a9d8c7b6a5"
	keyB = "sk-b-8e7d6c5b4a3f2e1d0c9b8a7f6e5d4c3b"
)

// Models the mock upstream scripts: slow answers after a minute (a batch
// that is still running when it is cancelled). A file has one model, as
// OpenAI requires.
const (
	modelOK   = "gpt-4o-mini"
	modelSlow = "slow-model"
)

// refuse in a prompt makes the upstream answer 400 (a request that ends
// failed, in the error file).
const refuse = "please-refuse-this"

// env is one isolated deployment behind the gateway: an embedded
// nats-server, a Redis prefix, a mock upstream, a worker in-process and a
// gateway served over HTTP, with an SDK client per tenant and every log
// line of the worker and the gateway.
type env struct {
	nc     *nats.Conn
	prefix string
	mock   *mockupstream.Server
	gw     *gateway.Server
	url    string
	a, b   openai.Client
	logs   *testlog.Buffer
	// tel serves what the gateway's meter recorded (metrics_test.go).
	tel *telemetry.Providers
}

func setup(t *testing.T) *env {
	t.Helper()
	ns := testnats.New(t)
	rd := testredis.New(t)
	mock := testupstream.New(t, mockupstream.Options{
		Record: true,
		Models: map[string]mockupstream.Script{modelSlow: {Latency: &mockupstream.Latency{Min: time.Minute}}},
	})
	upstream := refusing(t, mock.URL())
	logs := &testlog.Buffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("worker and gateway logs:\n%s", logs.String())
		}
	})
	log := zerolog.New(logs).With().Timestamp().Logger()

	s := config.Default()
	s.NATSURL = ns.URL()
	s.RedisURL = rd.URL()
	s.Prefix = rd.Prefix
	s.Streams.DiscoveryInterval = 100 * time.Millisecond
	s.Streams.FetchExpiry = time.Second
	s.Worker.ShutdownGrace = time.Second
	s.Worker.Batches.FinalizeGrace = 500 * time.Millisecond
	s.Worker.Batches.SweepInterval = 100 * time.Millisecond
	s.Upstream.Default = &httpclient.Route{BaseURL: upstream}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := config.Start(ctx, s, config.Options{Logger: &log})
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), p.StopTimeout())
		defer cancel()
		_ = p.Stop(ctx)
	})

	nc := ns.Connect()
	tel, err := telemetry.Setup(ctx, "test", nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
	gw, err := gateway.New(nc, gateway.Config{
		Prefix:  rd.Prefix,
		Keys:    map[string]string{gateway.HashKey(keyA): "tenant-a", gateway.HashKey(keyB): "tenant-b"},
		Windows: []string{"24h", "1h"},
		Meter:   tel.Meter,
	}, log)
	require.NoError(t, err)
	require.NoError(t, gw.Start(ctx))
	t.Cleanup(func() { _ = gw.Close() })
	hs := httptest.NewServer(gw.Handler())
	t.Cleanup(hs.Close)

	e := &env{nc: nc, prefix: rd.Prefix, mock: mock, gw: gw, url: hs.URL + "/v1", logs: logs, tel: tel}
	e.a = e.client(t, keyA)
	e.b = e.client(t, keyB)
	return e
}

// refusing is an upstream in front of the mock that answers 400 with
// OpenAI's error envelope to a request whose body contains refuse, and
// passes every other one to the mock. It closes when the test ends.
func refusing(t *testing.T, mockURL string) string {
	t.Helper()
	target, err := url.Parse(mockURL)
	require.NoError(t, err)
	tr := http.DefaultTransport.(*http.Transport).Clone()
	t.Cleanup(tr.CloseIdleConnections)
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.Transport = tr
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return
		}
		if bytes.Contains(body, []byte(refuse)) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			_, _ = io.WriteString(w, `{"error":{"message":"refused by the test upstream","type":"invalid_request_error","param":"messages","code":null}}`)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close)
	return front.URL
}

// client is an SDK client of the gateway with key ("" for none), on an
// HTTP transport of its own that is closed when the test ends. It never
// retries, so every answer the test sees is the gateway's first.
func (e *env) client(t *testing.T, key string) openai.Client {
	t.Helper()
	tr := http.DefaultTransport.(*http.Transport).Clone()
	t.Cleanup(tr.CloseIdleConnections)
	return openai.NewClient(
		option.WithBaseURL(e.url),
		option.WithAPIKey(key),
		option.WithHTTPClient(&http.Client{Transport: tr}),
		option.WithMaxRetries(0),
		option.WithRequestTimeout(10*time.Second),
	)
}

// upload sends lines as a batch input file.
func upload(t *testing.T, c openai.Client, name string, lines ...string) *openai.FileObject {
	t.Helper()
	var body bytes.Buffer
	for _, l := range lines {
		body.WriteString(l)
		body.WriteByte('\n')
	}
	size := int64(body.Len())
	f, err := c.Files.New(context.Background(), openai.FileNewParams{
		File:    openai.File(&body, name, "application/jsonl"),
		Purpose: openai.FilePurposeBatch,
	})
	require.NoError(t, err)
	require.Equal(t, size, f.Bytes, "the file object counts the bytes uploaded")
	require.Equal(t, name, f.Filename)
	require.Equal(t, openai.FileObjectPurposeBatch, f.Purpose)
	return f
}

// chatLine is an input line for /v1/chat/completions.
func chatLine(customID, model, prompt string) string {
	return jsonLine(map[string]any{
		"custom_id": customID, "method": "POST", "url": "/v1/chat/completions",
		"body": map[string]any{"model": model, "messages": []map[string]string{{"role": "user", "content": prompt}}},
	})
}

func jsonLine(v any) string {
	data, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(data)
}

// newBatch creates a chat batch over file with a 24h window.
func newBatch(t *testing.T, c openai.Client, fileID string) *openai.Batch {
	t.Helper()
	b, err := c.Batches.New(context.Background(), openai.BatchNewParams{
		InputFileID:      fileID,
		Endpoint:         openai.BatchNewParamsEndpointV1ChatCompletions,
		CompletionWindow: openai.BatchNewParamsCompletionWindow24h,
	})
	require.NoError(t, err)
	require.Equal(t, openai.BatchStatusValidating, b.Status, "a new batch is validating: its file is checked in the background")
	require.Equal(t, fileID, b.InputFileID)
	return b
}

// waitStatus polls the batch with the SDK until it has status (or ends
// otherwise, which fails at once).
func waitStatus(t *testing.T, c openai.Client, id string, status openai.BatchStatus, within time.Duration) *openai.Batch {
	t.Helper()
	var last *openai.Batch
	require.Eventually(t, func() bool {
		b, err := c.Batches.Get(context.Background(), id)
		if err != nil {
			return false
		}
		last = b
		return b.Status == status || terminal(b.Status)
	}, within, 20*time.Millisecond, "batch %s never %s", id, status)
	require.Equal(t, status, last.Status, "batch %s ended otherwise: %s", id, last.RawJSON())
	return last
}

func terminal(s openai.BatchStatus) bool {
	switch s {
	case openai.BatchStatusCompleted, openai.BatchStatusFailed, openai.BatchStatusExpired, openai.BatchStatusCancelled:
		return true
	}
	return false
}

// content downloads a file's bytes with the SDK.
func content(t *testing.T, c openai.Client, id string) string {
	t.Helper()
	res, err := c.Files.Content(context.Background(), id)
	require.NoError(t, err)
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return string(data)
}

// lines splits a JSONL file into its non-blank lines.
func lines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.TrimSpace(l) != "" {
			out = append(out, l)
		}
	}
	return out
}
