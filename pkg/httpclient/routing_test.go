package httpclient

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/salvo-run/salvo/internal/mockupstream"
	"github.com/salvo-run/salvo/internal/testlog"
	"github.com/salvo-run/salvo/internal/testupstream"
	"github.com/salvo-run/salvo/pkg/lifecycle"
)

func TestJoinURLRefusesEscapes(t *testing.T) {
	t.Parallel()
	base, err := parseBaseURL("https://api.example.com/proxy/")
	require.NoError(t, err)
	good := map[string]string{
		"/v1/chat/completions":       "https://api.example.com/proxy/v1/chat/completions",
		"/v1/files?purpose=batch":    "https://api.example.com/proxy/v1/files?purpose=batch",
		"/v1/models/ft:gpt-4o:org:1": "https://api.example.com/proxy/v1/models/ft:gpt-4o:org:1",
	}
	for in, want := range good {
		u, err := joinURL(base, in)
		require.NoError(t, err, in)
		require.Equal(t, want, u.String())
	}
	for _, in := range []string{
		"/../admin", "/v1/../../admin", "/v1/%2e%2e/%2e%2e/admin", "/v1/..%2f..%2fadmin", "/./v1",
		"//evil.example.com/v1", "http://evil.example.com/v1", "https://api.example.com/v1",
		"v1/chat", "", "/v1\\..\\admin", "/v1/%2E%2E", "/@evil.example.com",
	} {
		u, err := joinURL(base, in)
		if err == nil {
			// Anything accepted must stay on the base's host and prefix.
			require.Equal(t, "api.example.com", u.Host, in)
			require.True(t, strings.HasPrefix(u.Path, "/proxy/"), in)
			require.NotContains(t, u.Path, "..", in)
			continue
		}
		require.Error(t, err, in)
	}
	for _, in := range []string{"/../admin", "//evil.example.com/v1", "http://evil.example.com/v1", "/v1/%2e%2e/x", "/v1/..%2fx"} {
		_, err := joinURL(base, in)
		require.Error(t, err, in)
	}
}

func TestEscapingPathIsBuildErrorAndNeverSent(t *testing.T) {
	t.Parallel()
	c, b := setup(t, mockupstream.Options{}, nil)
	for _, p := range []string{"/../v1/chat/completions", "//127.0.0.1:1/v1", "http://127.0.0.1:1/v1/chat/completions", "/v1/%2e%2e/secret"} {
		req := chatRequest("r-escape", nil)
		req.URL = p
		resp := c.Do(t.Context(), req, Call{})
		require.NotNil(t, resp.Failure, p)
		require.Equal(t, lifecycle.CodeRequestBuild, resp.Failure.Code, p)
		require.Equal(t, 0, resp.TransportRetries)
	}
	require.Equal(t, int64(0), b.mock.Calls())
}

func TestUnroutedModel(t *testing.T) {
	t.Parallel()
	c, b := setup(t, mockupstream.Options{}, nil)
	require.True(t, c.Routed(testModel))
	require.False(t, c.Routed("other-model"))
	req := chatRequest("r-unrouted", map[string]any{"model": "other-model"})
	req.Model = "other-model"
	resp := c.Do(t.Context(), req, Call{})
	require.Equal(t, lifecycle.CodeUnroutedModel, resp.Failure.Code)
	require.Contains(t, resp.Failure.Message, "other-model")

	// A default route serves every model.
	cfg := Config{Routes: map[string]Route{}, Default: &Route{BaseURL: b.mock.URL()}}
	require.NoError(t, c.SetConfig(cfg))
	require.True(t, c.Routed("other-model"))
	resp = c.Do(t.Context(), req, Call{})
	require.Nil(t, resp.Failure)
	require.Equal(t, 1, b.mock.CallsFor(req.ID))
}

func TestHeadersSentUpstream(t *testing.T) {
	t.Parallel()
	c, b := setup(t, mockupstream.Options{}, func(cfg *Config) {
		r := cfg.Routes[testModel]
		r.Headers = map[string]string{"OpenAI-Organization": "org-1", "X-Request-Id": "overridden-by-salvo"}
		cfg.Routes[testModel] = r
	})
	req := chatRequest("r-headers", nil)
	req.Metadata = map[string]string{"user_tier": "gold"}
	tp := "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	resp := c.Do(t.Context(), req, Call{TraceParent: tp, BatchMetadata: map[string]string{"tenant_name": "acme"}})
	require.Nil(t, resp.Failure)
	got := b.mock.Received(req.ID)
	require.Len(t, got, 1)
	h := got[0].Header
	require.Equal(t, "Bearer sk-route-secret-0001", h.Get("Authorization"))
	require.Equal(t, "application/json", h.Get("Content-Type"))
	require.Equal(t, req.ID, h.Get("X-Request-Id"))
	require.Equal(t, req.ID, h.Get("X-Salvo-Request-Id"))
	require.Equal(t, "custom-r-headers", h.Get("X-Salvo-Custom-Id"))
	require.Equal(t, "batch-1", h.Get("X-Salvo-Batch-Id"))
	require.Equal(t, "acme", h.Get("X-Salvo-Batch-Tenant-Name"))
	require.Equal(t, "gold", h.Get("X-Salvo-Meta-User-Tier"))
	require.Equal(t, tp, h.Get("Traceparent"))
	require.Equal(t, "org-1", h.Get("OpenAI-Organization"))
	require.Equal(t, req.ID, resp.RequestID)

	// A header value that would split the request is a build error.
	bad := chatRequest("r-bad-header", nil)
	resp = c.Do(t.Context(), bad, Call{TraceParent: "x\r\nInjected: 1"})
	require.Equal(t, lifecycle.CodeRequestBuild, resp.Failure.Code)
	require.Equal(t, 0, b.mock.CallsFor(bad.ID))
}

func TestPerRequestKeyOnlyWhereAllowed(t *testing.T) {
	t.Parallel()
	c, b := setup(t, mockupstream.Options{}, func(cfg *Config) {
		cfg.Routes["open"] = Route{BaseURL: cfg.Routes[testModel].BaseURL, APIKey: "sk-open-route", AllowRequestAPIKey: true}
	})
	cases := []struct {
		model, id string
		callKey   Secret
		want      string
	}{
		{testModel, "r-key-1", "sk-user-key", "Bearer sk-route-secret-0001"}, // not allowed: ignored
		{"open", "r-key-2", "sk-user-key", "Bearer sk-user-key"},
		{"open", "r-key-3", "", "Bearer sk-open-route"},
	}
	for _, tc := range cases {
		req := chatRequest(tc.id, map[string]any{"model": tc.model})
		req.Model = tc.model
		resp := c.Do(t.Context(), req, Call{APIKey: tc.callKey})
		require.Nil(t, resp.Failure, tc.id)
		got := b.mock.Received(tc.id)
		require.Len(t, got, 1)
		require.Equal(t, tc.want, got[0].Header.Get("Authorization"), tc.id)
	}
}

func TestNoSecretInLogsOrErrors(t *testing.T) {
	t.Parallel()
	const routeKey, callKey = "sk-route-secret-0001", "sk-call-secret-XYZ"
	c, b := setup(t, mockupstream.Options{}, func(cfg *Config) {
		r := cfg.Routes[testModel]
		r.AllowRequestAPIKey = true
		cfg.Routes[testModel] = r
		cfg.TransportRetries = 1
		cfg.Timeouts.FirstByte = 100 * time.Millisecond
	})
	var msgs []string
	run := func(id string, mutate func(*lifecycle.Request), script *mockupstream.Script, call Call) {
		req := chatRequest(id, nil)
		if mutate != nil {
			mutate(req)
		}
		if script != nil {
			b.mock.Script(id, *script)
		}
		resp := doWithin(t, c, t.Context(), req, call, hangLimit)
		if resp.Failure != nil {
			msgs = append(msgs, resp.Failure.Error(), resp.Failure.Message)
			fj, err := json.Marshal(resp.Failure)
			require.NoError(t, err)
			msgs = append(msgs, string(fj))
		}
		msgs = append(msgs, string(resp.Body))
	}
	withCall := Call{APIKey: callKey}
	run("s-ok", nil, nil, withCall)
	run("s-500", nil, &mockupstream.Script{Sequence: []int{500}}, withCall)
	run("s-reset", nil, &mockupstream.Script{Sequence: []int{mockupstream.StatusReset, mockupstream.StatusReset}}, withCall)
	run("s-timeout", nil, &mockupstream.Script{Stall: &mockupstream.Stall{BeforeHeaders: time.Minute}}, Call{})
	run("s-build", func(r *lifecycle.Request) { r.URL = "/../x" }, nil, withCall)
	run("s-header", nil, nil, Call{APIKey: callKey, TraceParent: "bad\nvalue"})
	run("s-unrouted", func(r *lifecycle.Request) { r.Model = "nope" }, nil, withCall)

	// Config errors, printing and marshaling of the config.
	cfg := Config{Routes: map[string]Route{"m": {BaseURL: "ftp://x", APIKey: routeKey}}}
	msgs = append(msgs, cfg.WithDefaults().Validate().Error())
	bad := Config{Routes: map[string]Route{"m": {BaseURL: "http://x", APIKey: routeKey + "\n"}}}
	msgs = append(msgs, bad.WithDefaults().Validate().Error())
	_, err := New(bad, zerolog.Nop())
	msgs = append(msgs, err.Error())
	route := Route{BaseURL: "http://x", APIKey: routeKey}
	msgs = append(msgs, fmt.Sprintf("%v %+v %#v %s %q %x %d", route, route, route, route.APIKey, route.APIKey, route.APIKey, route.APIKey))
	j, err := json.Marshal(Config{Routes: map[string]Route{"m": route}, Default: &route})
	require.NoError(t, err)
	y, err := yaml.Marshal(map[string]any{"key": route.APIKey, "route": route})
	require.NoError(t, err)
	msgs = append(msgs, string(j), string(y))
	var zl testlog.Buffer
	zl2 := zerolog.New(&zl)
	zl2.Info().Interface("route", route).Stringer("key", route.APIKey).Interface("k", route.APIKey).Msg("route")
	msgs = append(msgs, zl.String(), b.logs.String())

	require.Contains(t, b.logs.String(), "retrying", "debug logs were captured")
	for _, m := range msgs {
		require.NotContains(t, m, routeKey)
		require.NotContains(t, m, callKey)
		require.NotContains(t, m, "Bearer")
	}
}

func TestConfigValidateNamesTheField(t *testing.T) {
	t.Parallel()
	ok := Route{BaseURL: "http://127.0.0.1:8080"}
	cases := map[string]Config{
		`routes["gpt-4o"].base_url`:      {Routes: map[string]Route{"gpt-4o": {BaseURL: "ftp://x"}}},
		`routes["a"].base_url`:           {Routes: map[string]Route{"a": {BaseURL: "http://user:pw@x"}}},
		`routes["b"].base_url`:           {Routes: map[string]Route{"b": {BaseURL: "http://x/v1?q=1"}}},
		`routes["c"].headers`:            {Routes: map[string]Route{"c": {BaseURL: "http://x", Headers: map[string]string{"bad name": "v"}}}},
		`default.base_url`:               {Default: &Route{}},
		`idle_timeout`:                   {Routes: map[string]Route{"m": ok}, Timeouts: Timeouts{Idle: -time.Second}},
		`transport_retries`:              {Routes: map[string]Route{"m": ok}, TransportRetries: -2},
		`transport_backoff`:              {Routes: map[string]Route{"m": ok}, TransportBackoff: time.Hour},
		`max_conns_per_host`:             {Routes: map[string]Route{"m": ok}, MaxConnsPerHost: -1},
		`retry.extra_retriable_statuses`: {Routes: map[string]Route{"m": ok}, Retry: lifecycle.RetryPolicy{ExtraRetriableStatuses: []int{200}}},
	}
	for field, cfg := range cases {
		err := cfg.WithDefaults().Validate()
		require.Error(t, err, field)
		require.True(t, strings.HasPrefix(err.Error(), field), "%q should name %s", err, field)
		_, err = New(cfg, zerolog.Nop())
		require.ErrorIs(t, err, ErrInvalidConfig)
	}
	d := Config{}.WithDefaults()
	require.Equal(t, ConnectTimeoutDefault, d.Timeouts.Connect)
	require.Equal(t, FirstByteTimeoutDefault, d.Timeouts.FirstByte)
	require.Equal(t, IdleTimeoutDefault, d.Timeouts.Idle)
	require.Equal(t, BodyTimeoutDefault, d.Timeouts.Body)
	require.Equal(t, UploadStallTimeoutDefault, d.Timeouts.UploadStall)
	require.Equal(t, TransportRetriesDefault, d.TransportRetries)
	require.Equal(t, TransportBackoffDefault, d.TransportBackoff)
	require.NoError(t, d.Validate())
}

func TestResolveKeys(t *testing.T) {
	t.Parallel()
	env := map[string]string{"OPENAI_KEY": "sk-from-env"}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	cfg := Config{Routes: map[string]Route{"m": {BaseURL: "http://x", APIKeyEnv: "OPENAI_KEY"}},
		Default: &Route{BaseURL: "http://y", APIKeyEnv: "MISSING_KEY"}}
	_, err := cfg.ResolveKeys(lookup)
	require.ErrorContains(t, err, "default.api_key_env")
	cfg.Default = nil
	got, err := cfg.ResolveKeys(lookup)
	require.NoError(t, err)
	require.Equal(t, "sk-from-env", got.Routes["m"].APIKey.Reveal())
	require.Empty(t, cfg.Routes["m"].APIKey, "the input config is not modified")
}

func TestSetConfigKeepsInFlightCalls(t *testing.T) {
	t.Parallel()
	var arrived atomic.Bool
	c, a := setup(t, mockupstream.Options{OnRequest: func(*http.Request, string, string) { arrived.Store(true) }}, nil)
	other := testupstream.New(t, mockupstream.Options{Record: true})

	slow := chatRequest("r-inflight", nil)
	a.mock.Script(slow.ID, mockupstream.Script{Stall: &mockupstream.Stall{BeforeHeaders: 300 * time.Millisecond}})
	done := make(chan *Response, 1)
	go func() { done <- c.Do(t.Context(), slow, Call{}) }()
	require.Eventually(t, arrived.Load, hangLimit, time.Millisecond)

	// Reload with a different route and a different connect timeout (a new
	// transport): the call in flight still completes on the old one.
	require.NoError(t, c.SetConfig(Config{
		Routes:   map[string]Route{testModel: {BaseURL: other.URL()}},
		Timeouts: Timeouts{Connect: 3 * time.Second},
	}))
	resp := <-done
	require.Nil(t, resp.Failure)
	require.Equal(t, 1, a.mock.CallsFor(slow.ID))

	next := chatRequest("r-after-reload", nil)
	resp = c.Do(t.Context(), next, Call{})
	require.Nil(t, resp.Failure)
	require.Equal(t, 0, a.mock.CallsFor(next.ID))
	require.Equal(t, 1, other.CallsFor(next.ID))

	err := c.SetConfig(Config{Routes: map[string]Route{"x": {BaseURL: "nope"}}})
	require.ErrorIs(t, err, ErrInvalidConfig)
	require.ErrorContains(t, err, `routes["x"].base_url`)
	require.True(t, c.Routed(testModel), "a rejected config changes nothing")
}

func TestHTTP2NegotiatedOverTLS(t *testing.T) {
	t.Parallel()
	var proto atomic.Value
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		proto.Store(r.Proto)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"id":"x","object":"chat.completion","choices":[]}`))
	}))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	defer srv.Close()
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	c, err := New(Config{Routes: map[string]Route{testModel: {BaseURL: srv.URL}}, TLS: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}, zerolog.Nop())
	require.NoError(t, err)
	defer c.Close()
	resp := c.Do(t.Context(), chatRequest("r-h2", nil), Call{})
	require.Nil(t, resp.Failure)
	require.Equal(t, "HTTP/2.0", proto.Load())

	// A certificate the client does not trust is a configuration problem:
	// not retried in-process.
	c2, err := New(Config{Routes: map[string]Route{testModel: {BaseURL: srv.URL}}, TransportBackoff: time.Millisecond}, zerolog.Nop())
	require.NoError(t, err)
	defer c2.Close()
	resp = c2.Do(t.Context(), chatRequest("r-untrusted", nil), Call{})
	require.Equal(t, lifecycle.CodeNetworkError, resp.Failure.Code)
	require.Equal(t, 0, resp.TransportRetries)
	u, _ := url.Parse(srv.URL)
	require.NotEmpty(t, u.Host)
	require.False(t, errors.Is(resp.Failure, ErrTimeout))
}
