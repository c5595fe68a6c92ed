package httpclient

import (
	"context"
	"encoding/json"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/salvo-run/salvo/internal/mockupstream"
	"github.com/salvo-run/salvo/internal/testlog"
	"github.com/salvo-run/salvo/internal/testupstream"
	"github.com/salvo-run/salvo/pkg/lifecycle"
)

const testModel = "gpt-test"

// bundle is what setup returns besides the client.
type bundle struct {
	mock *mockupstream.Server
	logs *testlog.Buffer
}

// setup starts a mock upstream and a client routed to it for testModel.
// mod adjusts the config (routes already point at the mock).
func setup(t *testing.T, mopts mockupstream.Options, mod func(*Config), opts ...clientOptions) (*Client, *bundle) {
	t.Helper()
	mopts.Record = true
	if mopts.Clock == nil {
		mopts.Clock = func() time.Time { return time.Unix(1_700_000_000, 0) }
	}
	mock := testupstream.New(t, mopts)
	cfg := Config{
		Routes:           map[string]Route{testModel: {BaseURL: mock.URL(), APIKey: "sk-route-secret-0001"}},
		TransportBackoff: time.Millisecond,
		Timeouts:         Timeouts{FirstByte: 10 * time.Second, Idle: 10 * time.Second, Body: 20 * time.Second, UploadStall: 10 * time.Second},
	}
	if mod != nil {
		mod(&cfg)
	}
	logs := &testlog.Buffer{}
	var o clientOptions
	if len(opts) > 0 {
		o = opts[0]
	}
	o.seed = 42
	c, err := newClient(cfg, zerolog.New(logs).Level(zerolog.DebugLevel), o)
	require.NoError(t, err)
	t.Cleanup(c.Close)
	return c, &bundle{mock: mock, logs: logs}
}

// chatRequest builds a request for testModel.
func chatRequest(id string, body map[string]any) *lifecycle.Request {
	if body == nil {
		body = map[string]any{}
	}
	if _, ok := body["model"]; !ok {
		body["model"] = testModel
	}
	if _, ok := body["messages"]; !ok {
		body["messages"] = []any{map[string]any{"role": "user", "content": "hello"}}
	}
	b, err := json.Marshal(body)
	if err != nil {
		panic(err)
	}
	return &lifecycle.Request{V: 1, ID: id, BatchID: "batch-1", CustomID: "custom-" + id, Model: testModel,
		Method: "POST", URL: "/v1/chat/completions", Body: b, ExpiresAt: time.Now().Add(time.Hour)}
}

// bigRequest is a chat request whose body is about size bytes.
func bigRequest(id string, size int) *lifecycle.Request {
	return chatRequest(id, map[string]any{"pad": strings.Repeat("x", size)})
}

// smallSendBuffer shrinks the client's socket send buffer so an upload
// that the server does not read stalls after a few KiB instead of MiB.
func smallSendBuffer() clientOptions {
	return clientOptions{dialControl: func(_, _ string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_SNDBUF, 16<<10)
		}); err != nil {
			return err
		}
		return serr
	}}
}

// doWithin runs Do and fails the test if it does not return within limit
// (a generous bound that only catches hangs).
func doWithin(t *testing.T, c *Client, ctx context.Context, req *lifecycle.Request, call Call, limit time.Duration) *Response {
	t.Helper()
	done := make(chan *Response, 1)
	go func() { done <- c.Do(ctx, req, call) }()
	select {
	case r := <-done:
		return r
	case <-time.After(limit):
		t.Fatalf("Do did not return within %s", limit)
		return nil
	}
}
