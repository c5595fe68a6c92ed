package httpclient

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/salvo-run/salvo/pkg/lifecycle"
	"github.com/salvo-run/salvo/pkg/ratelimit"
)

// Call carries what a single attempt needs beyond the request itself.
type Call struct {
	// TraceParent is the W3C traceparent to forward.
	TraceParent string
	// APIKey is an optional per-request or per-batch key, used only when
	// the route allows it (Route.AllowRequestAPIKey).
	APIKey Secret
	// BatchMetadata is sent as X-Salvo-Batch-<Key> headers ('_' → '-').
	BatchMetadata map[string]string
}

// Response is the outcome of one Do.
type Response struct {
	// Status is the HTTP status, 0 when no response arrived.
	Status int
	// Body is the response body (a stream reassembled into the final
	// JSON), kept for error statuses too.
	Body []byte
	// RequestID is the upstream's x-request-id, if any.
	RequestID string
	// RetryAfter is the parsed retry-after-ms or Retry-After, when present.
	RetryAfter time.Duration
	// Limits is what the rate-limit headers said (ratelimit.ParseHeaders).
	Limits ratelimit.Observation
	// Failure is nil on success (status < 400), else classified.
	Failure *lifecycle.Failure
	// Duration is the wall time of the whole Do, retries included.
	Duration time.Duration
	// TransportRetries is the number of in-process retries spent.
	TransportRetries int
}

// Client executes upstream calls. It is safe for concurrent use; SetConfig
// swaps routes and timeouts without disturbing calls in flight.
type Client struct {
	log   zerolog.Logger
	opts  clientOptions
	state atomic.Pointer[clientState]

	mu  sync.Mutex // guards rnd
	rnd *rand.Rand
}

// clientOptions are test seams that are not part of Config.
type clientOptions struct {
	// dialControl runs on every dialed socket (tests shrink SO_SNDBUF).
	dialControl func(network, address string, c syscall.RawConn) error
	// seed seeds the jitter source; 0 picks a random seed.
	seed uint64
}

// clientState is one configuration with the transport serving it.
type clientState struct {
	cfg   Config
	bases map[string]*url.URL
	// budgets are the routes' budget names (budgetName), by model; def is
	// the default route's.
	budgets   map[string]string
	defBudget string
	defBase   *url.URL
	transport *http.Transport
	http      *http.Client
	// h2c serves the routes with H2C set (nil when none has it): a
	// transport of its own, since it speaks nothing but HTTP/2.
	h2cTransport *http.Transport
	h2c          *http.Client
	// drop are the transports a newer state did not keep (set before
	// retired).
	drop     []*http.Transport
	inflight atomic.Int64
	retired  atomic.Bool
}

// New builds a Client. cfg gets WithDefaults applied and must validate.
func New(cfg Config, log zerolog.Logger) (*Client, error) {
	return newClient(cfg, log, clientOptions{})
}

func newClient(cfg Config, log zerolog.Logger, opts clientOptions) (*Client, error) {
	seed := opts.seed
	if seed == 0 {
		seed = rand.Uint64()
	}
	c := &Client{
		log:  log.With().Str("component", "httpclient").Logger(),
		opts: opts,
		rnd:  rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
	}
	st, err := c.buildState(cfg, nil)
	if err != nil {
		return nil, err
	}
	c.state.Store(st)
	return c, nil
}

// SetConfig replaces routes, timeouts and retry settings at runtime. Calls in
// flight finish with the configuration they started with. The transport
// (and its pooled connections) is kept unless a connection setting changed
// (timeouts.connect, max_conns_per_host, TLS).
func (c *Client) SetConfig(cfg Config) error {
	old := c.state.Load()
	st, err := c.buildState(cfg, old)
	if err != nil {
		return err
	}
	c.state.Store(st)
	// The old state's transports the new one does not keep close their
	// idle connections once its last call ends.
	if st.transport != old.transport {
		old.drop = append(old.drop, old.transport)
	}
	if old.h2cTransport != nil && st.h2cTransport != old.h2cTransport {
		old.drop = append(old.drop, old.h2cTransport)
	}
	if len(old.drop) > 0 {
		old.retired.Store(true)
		if old.inflight.Load() == 0 {
			old.closeIdle()
		}
	}
	c.log.Info().Int("routes", len(cfg.Routes)).Bool("default_route", cfg.Default != nil).Msg("config reloaded")
	return nil
}

// Routed reports whether a call for model has a route.
func (c *Client) Routed(model string) bool {
	st := c.state.Load()
	_, ok := st.cfg.Routes[model]
	return ok || st.cfg.Default != nil
}

// RouteModels lists the models with a route of their own (not the
// default route's), sorted.
func (c *Client) RouteModels() []string {
	return slices.Sorted(maps.Keys(c.state.Load().cfg.Routes))
}

// Budget names what the rate-limit budget of a call for model is shared
// with (Route.Budget): the route's budget name, else a hash of the key the
// call is sent with, else the route. Never the key itself.
func (c *Client) Budget(model string, call Call) string {
	st := c.state.Load()
	r, ok := st.cfg.Routes[model]
	name, found := st.budgets[model]
	if !ok {
		if st.cfg.Default == nil {
			return ""
		}
		r, name, found = *st.cfg.Default, st.defBudget, true
	}
	if found && r.Budget == "" && r.AllowRequestAPIKey && !call.APIKey.IsZero() {
		return keyHash(call.APIKey)
	}
	return name
}

// Close closes idle connections. Calls in flight are not interrupted (cancel
// their contexts for that); the Client stays usable.
func (c *Client) Close() {
	st := c.state.Load()
	st.transport.CloseIdleConnections()
	if st.h2cTransport != nil {
		st.h2cTransport.CloseIdleConnections()
	}
}

func (c *Client) buildState(cfg Config, old *clientState) (*clientState, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	st := &clientState{cfg: cfg, bases: make(map[string]*url.URL, len(cfg.Routes)), budgets: make(map[string]string, len(cfg.Routes))}
	for name, r := range cfg.Routes {
		st.budgets[name] = r.budgetName("route:" + name)
		u, err := parseBaseURL(r.BaseURL)
		if err != nil { // unreachable after Validate; kept for safety
			return nil, fmt.Errorf("%w: routes[%q].base_url: %w", ErrInvalidConfig, name, err)
		}
		st.bases[name] = u
	}
	if cfg.Default != nil {
		u, err := parseBaseURL(cfg.Default.BaseURL)
		if err != nil {
			return nil, fmt.Errorf("%w: default.base_url: %w", ErrInvalidConfig, err)
		}
		st.defBase = u
		st.defBudget = cfg.Default.budgetName("default")
	}
	if old != nil && sameTransport(old.cfg, cfg) {
		st.transport = old.transport
	} else {
		st.transport = c.newTransport(cfg)
	}
	st.http = newHTTPClient(st.transport)
	if usesH2C(cfg) {
		if old != nil && old.h2cTransport != nil && sameTransport(old.cfg, cfg) {
			st.h2cTransport = old.h2cTransport
		} else {
			st.h2cTransport = c.newTransport(cfg)
			st.h2cTransport.Protocols = new(http.Protocols)
			st.h2cTransport.Protocols.SetUnencryptedHTTP2(true)
			// Many calls share an HTTP/2 connection: one that died
			// silently (a NAT dropping it) is found by a ping rather
			// than by every call on it timing out.
			st.h2cTransport.HTTP2 = &http.HTTP2Config{SendPingTimeout: h2cPingAfter, PingTimeout: h2cPingTimeout}
		}
		st.h2c = newHTTPClient(st.h2cTransport)
	}
	return st, nil
}

// h2c connections are pinged after h2cPingAfter without a frame and closed
// when the ping is not answered within h2cPingTimeout.
const (
	h2cPingAfter   = 30 * time.Second
	h2cPingTimeout = 15 * time.Second
)

func newHTTPClient(t *http.Transport) *http.Client {
	return &http.Client{
		Transport: t,
		// Redirects are not followed: a 3xx is reported as it came, and
		// credentials never travel to a host the route did not name.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// usesH2C reports whether a route of cfg asks for HTTP/2 without TLS.
func usesH2C(cfg Config) bool {
	if cfg.Default != nil && cfg.Default.H2C {
		return true
	}
	for _, r := range cfg.Routes {
		if r.H2C {
			return true
		}
	}
	return false
}

// closeIdle closes the idle connections of the transports a retired
// state's successor did not keep.
func (st *clientState) closeIdle() {
	for _, t := range st.drop {
		t.CloseIdleConnections()
	}
}

func sameTransport(a, b Config) bool {
	return a.Timeouts.Connect == b.Timeouts.Connect && a.MaxConnsPerHost == b.MaxConnsPerHost && a.TLS == b.TLS
}

// newTransport tunes net/http for many concurrent long calls to a few hosts:
// keep-alive, a large idle pool per host, HTTP/2 through ALPN, no
// transport-level timeouts besides connect (the watchdog owns the rest).
// The connection buffers stay at net/http's 4 KiB: an HTTP/1.1 upstream
// holds a connection per call in flight, so with 10,000 calls waiting on a
// slow model every extra KiB per buffer costs 20 MiB; bodies larger than a
// buffer are copied through it in a few more reads, which costs little next
// to the call.
func (c *Client) newTransport(cfg Config) *http.Transport {
	dialer := &net.Dialer{Timeout: cfg.Timeouts.Connect, KeepAlive: 30 * time.Second, Control: c.opts.dialControl}
	idle := IdleConnsPerHostDefault
	if cfg.MaxConnsPerHost > idle {
		idle = cfg.MaxConnsPerHost
	}
	t := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           dialer.DialContext,
		ForceAttemptHTTP2:     true,
		TLSHandshakeTimeout:   cfg.Timeouts.Connect,
		MaxIdleConns:          0, // no global limit; per host below
		MaxIdleConnsPerHost:   idle,
		MaxConnsPerHost:       cfg.MaxConnsPerHost,
		IdleConnTimeout:       90 * time.Second,
		ExpectContinueTimeout: 0,
	}
	if cfg.TLS != nil {
		t.TLSClientConfig = cfg.TLS.Clone()
	}
	return t
}

// jitter draws a uniform value in [0, 1) from the client's seeded source.
func (c *Client) jitter() float64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.rnd.Float64()
}

// route resolves the route and base URL for a model.
func (st *clientState) route(model string) (Route, *url.URL, bool) {
	if r, ok := st.cfg.Routes[model]; ok {
		return r, st.bases[model], true
	}
	if st.cfg.Default != nil {
		return *st.cfg.Default, st.defBase, true
	}
	return Route{}, nil, false
}

// Do runs one request attempt upstream, with in-process retries of
// transport errors before a status line. It never returns nil; the outcome
// is in Response.Failure. A canceled ctx aborts the call at once and yields
// lifecycle.CodeTaskTerminated (inspect context.Cause(ctx) for why).
func (c *Client) Do(ctx context.Context, req *lifecycle.Request, call Call) *Response {
	start := time.Now()
	st := c.state.Load()
	st.inflight.Add(1)
	defer func() {
		if st.inflight.Add(-1) == 0 && st.retired.Load() {
			st.closeIdle()
		}
	}()
	resp := c.do(ctx, st, req, call)
	resp.Duration = time.Since(start)
	if resp.Failure != nil {
		c.debug(req).Str("code", string(resp.Failure.Code)).Int("status", resp.Status).
			Int("transport_retries", resp.TransportRetries).Str("error", resp.Failure.Message).Msg("upstream call failed")
	}
	return resp
}

// debug starts a debug line about req's call, nil (writing nothing) when
// debug is off: the fields go onto the event, so a call logs nothing and
// allocates nothing for its log unless a line is written.
func (c *Client) debug(req *lifecycle.Request) *zerolog.Event {
	return c.log.Debug().Str("request_id", req.ID).Str("batch_id", req.BatchID).Str("model", req.Model) //nolint:zerologlint // each caller adds its fields and sends it
}

func (c *Client) do(ctx context.Context, st *clientState, req *lifecycle.Request, call Call) *Response {
	route, base, ok := st.route(req.Model)
	if !ok {
		return &Response{Failure: lifecycle.NewFailure(lifecycle.CodeUnroutedModel, 0, "no route for model %q", req.Model)}
	}
	prep, err := prepare(req, call, route, base)
	if err != nil {
		return &Response{Failure: lifecycle.NewFailure(lifecycle.CodeRequestBuild, 0, "%v", err)}
	}
	if !call.APIKey.IsZero() && !route.AllowRequestAPIKey {
		c.debug(req).Msg("per-request api key ignored: the route does not allow it")
	}
	retries := st.cfg.retries()
	for attempt := 0; ; attempt++ {
		resp, transportErr := c.attempt(ctx, st, prep)
		resp.TransportRetries = attempt
		if transportErr == nil || attempt >= retries {
			return resp
		}
		delay := TransportBackoffDelay(st.cfg.TransportBackoff, attempt, c.jitter)
		c.debug(req).Int("attempt", attempt+1).Int("max_retries", retries).Dur("delay", delay).
			Str("error", transportErr.Error()).Msg("transport error before a status line; retrying")
		if !sleepCtx(ctx, delay) {
			return &Response{TransportRetries: attempt, Failure: terminated(ctx)}
		}
	}
}

// terminated is the failure of a call whose context was canceled.
func terminated(ctx context.Context) *lifecycle.Failure {
	cause := context.Cause(ctx)
	if cause == nil {
		cause = errors.New("context canceled")
	}
	return lifecycle.NewFailure(lifecycle.CodeTaskTerminated, 0, "call aborted: %v", cause)
}
