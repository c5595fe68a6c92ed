package httpclient

import (
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/salvo-run/salvo/pkg/lifecycle"
)

// Defaults for Timeouts and Config.
const (
	ConnectTimeoutDefault     = 10 * time.Second
	FirstByteTimeoutDefault   = 10 * time.Minute
	IdleTimeoutDefault        = 2 * time.Minute
	BodyTimeoutDefault        = 15 * time.Minute
	UploadStallTimeoutDefault = 60 * time.Second

	TransportRetriesDefault = 3
	TransportBackoffDefault = 200 * time.Millisecond
	// TransportBackoffCap caps every in-process retry delay, jitter included.
	TransportBackoffCap = 30 * time.Second
	// TransportJitter is the ± fraction applied to in-process retry delays.
	TransportJitter = 0.25

	// MaxResponseBytesDefault bounds one response body (a stream counts its
	// raw event-stream bytes).
	MaxResponseBytesDefault int64 = 64 << 20

	// IdleConnsPerHostDefault sizes the idle pool per upstream host so
	// thousands of concurrent calls reuse their connections.
	IdleConnsPerHostDefault = 1024
)

// NoTransportRetries as Config.TransportRetries disables in-process retries
// (0 means "use the default").
const NoTransportRetries = -1

// Route is where the calls for one model go.
type Route struct {
	// BaseURL is the upstream's scheme, host and optional path prefix, e.g.
	// https://api.openai.com or http://127.0.0.1:8080/proxy; the request's
	// path is joined under it and may not escape it.
	BaseURL string `yaml:"base_url"`
	// APIKey is the resolved key, sent as "Authorization: Bearer <key>".
	APIKey Secret `yaml:"-"`
	// APIKeyEnv names the environment variable holding the key; config files
	// never hold the key itself; it is read at start and at reload.
	APIKeyEnv string `yaml:"api_key_env"`
	// Headers are extra headers sent upstream (salvo's own headers win).
	Headers map[string]string `yaml:"headers"`
	// AllowRequestAPIKey lets a key sent with a request or its batch
	// replace the route's own key. When false such a key is ignored.
	AllowRequestAPIKey bool `yaml:"allow_request_api_key"`
	// H2C sends the route's calls as HTTP/2 without TLS (prior knowledge),
	// for an http:// upstream that speaks it (vLLM or a proxy in front of
	// it, for instance). Many calls then share a connection, instead of a
	// connection, two goroutines and their buffers per call in flight.
	// https:// routes negotiate HTTP/2 by themselves, through ALPN.
	H2C bool `yaml:"h2c"`
	// Budget names the rate-limit budget the route's calls share, per
	// model (pkg/ratelimit): routes with the same name share one. Empty
	// means the route's API key (by a hash of it), or the route itself
	// when it sends none.
	Budget string `yaml:"budget"`
}

// budgetName is the route's budget name: Budget, a hash of its key, or
// fallback.
func (r Route) budgetName(fallback string) string {
	switch {
	case r.Budget != "":
		return "name:" + r.Budget
	case !r.APIKey.IsZero():
		return keyHash(r.APIKey)
	}
	return fallback
}

// keyHash names a budget by its key without revealing it: "key:" and the
// first 16 hex digits of the key's SHA-256.
func keyHash(k Secret) string {
	sum := sha256.Sum256([]byte(k.Reveal()))
	return "key:" + hex.EncodeToString(sum[:8])
}

// Timeouts bounds each phase of a call; see the package documentation.
// In a config file they sit beside the other upstream keys
// (connect_timeout, first_byte_timeout, …).
type Timeouts struct {
	// Connect bounds the dial and TLS handshake; a connect error (this
	// timeout included) is retried in-process, then ends network_error.
	Connect time.Duration `yaml:"connect_timeout"`
	// FirstByte bounds the wait, once the request is written, for the
	// response headers (non-streaming) or the first SSE event (streaming).
	FirstByte time.Duration `yaml:"first_byte_timeout"`
	// Idle bounds a gap between body reads or SSE events after the first
	// byte.
	Idle time.Duration `yaml:"idle_timeout"`
	// Body bounds one whole attempt, counted from its start (before the
	// dial) to the last byte of the response body.
	Body time.Duration `yaml:"body_timeout"`
	// UploadStall bounds a stretch without progress while the request
	// body is written.
	UploadStall time.Duration `yaml:"upload_stall_timeout"`
}

// WithDefaults fills unset timeouts.
func (t Timeouts) WithDefaults() Timeouts {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&t.Connect, ConnectTimeoutDefault)
	def(&t.FirstByte, FirstByteTimeoutDefault)
	def(&t.Idle, IdleTimeoutDefault)
	def(&t.Body, BodyTimeoutDefault)
	def(&t.UploadStall, UploadStallTimeoutDefault)
	return t
}

// Validate reports the first invalid timeout as a *lifecycle.ConfigError
// named by its key.
func (t Timeouts) Validate() error {
	for _, f := range []struct {
		key string
		d   time.Duration
	}{
		{"connect_timeout", t.Connect}, {"first_byte_timeout", t.FirstByte}, {"idle_timeout", t.Idle},
		{"body_timeout", t.Body}, {"upload_stall_timeout", t.UploadStall},
	} {
		if f.d <= 0 {
			return lifecycle.ConfigErrorf(f.key, "must be positive, got %s", f.d)
		}
	}
	return nil
}

// Config configures a Client. The yaml tags name the keys of a
// deployment's "upstream" section.
type Config struct {
	// Routes maps a model name to its route.
	Routes map[string]Route `yaml:"routes"`
	// Default serves models without a route; nil makes such requests fail
	// with lifecycle.CodeUnroutedModel.
	Default *Route `yaml:"default"`
	// Timeouts bounds each phase of a call.
	Timeouts Timeouts `yaml:",inline"`
	// TransportRetries is how often a DNS/connect/TLS/IO error before a
	// status line is retried in-process. 0 means the default (3); -1
	// (NoTransportRetries) disables them.
	TransportRetries int `yaml:"transport_retries"`
	// TransportBackoff is the first retry's delay; retry n waits
	// TransportBackoff·2^n ±25 %, capped at TransportBackoffCap.
	TransportBackoff time.Duration `yaml:"transport_backoff"`
	// MaxConnsPerHost bounds connections per upstream host; 0 = unlimited.
	MaxConnsPerHost int `yaml:"max_conns_per_host"`
	// MaxResponseBytes bounds the bytes read of one response body, plain or
	// streamed (raw event-stream bytes); 0 means the default (64 MiB). A
	// larger response fails the call with lifecycle.CodeNonRetriableStatus
	// ("response larger than N bytes"): the same request would get the
	// same answer again, so retrying it cannot help.
	MaxResponseBytes int64 `yaml:"max_response_bytes"`
	// Retry classifies statuses (IsRetriableStatus / ClassifyStatus) only.
	// A deployment sets it from its top-level retry section.
	Retry lifecycle.RetryPolicy `yaml:"-"`
	// TLS is the client TLS configuration (root CAs for private upstreams);
	// nil uses the system roots. HTTP/2 is negotiated through ALPN.
	TLS *tls.Config `yaml:"-" json:"-"`
}

// WithDefaults fills every unset field.
func (c Config) WithDefaults() Config {
	c.Timeouts = c.Timeouts.WithDefaults()
	if c.TransportRetries == 0 {
		c.TransportRetries = TransportRetriesDefault
	}
	if c.TransportBackoff == 0 {
		c.TransportBackoff = TransportBackoffDefault
	}
	if c.MaxResponseBytes == 0 {
		c.MaxResponseBytes = MaxResponseBytesDefault
	}
	c.Retry = c.Retry.WithDefaults()
	return c
}

// retries is the effective number of in-process retries.
func (c Config) retries() int {
	if c.TransportRetries < 0 {
		return 0
	}
	return c.TransportRetries
}

// Validate reports the first invalid field as a *lifecycle.ConfigError named
// by its key, e.g. `routes["gpt-4o"].base_url: ...`. Call it after
// WithDefaults.
func (c Config) Validate() error {
	names := make([]string, 0, len(c.Routes))
	for name := range c.Routes {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if strings.TrimSpace(name) == "" {
			return lifecycle.ConfigErrorf(`routes[""]`, "model name must not be empty")
		}
		if err := c.Routes[name].validate(fmt.Sprintf("routes[%q]", name)); err != nil {
			return err
		}
	}
	if c.Default != nil {
		if err := c.Default.validate("default"); err != nil {
			return err
		}
	}
	if err := c.Timeouts.Validate(); err != nil {
		return err
	}
	switch {
	case c.TransportRetries < NoTransportRetries:
		return lifecycle.ConfigErrorf("transport_retries", "must be %d (none) or positive, got %d", NoTransportRetries, c.TransportRetries)
	case c.TransportBackoff < 0:
		return lifecycle.ConfigErrorf("transport_backoff", "must not be negative, got %s", c.TransportBackoff)
	case c.TransportBackoff > TransportBackoffCap:
		return lifecycle.ConfigErrorf("transport_backoff", "%s exceeds the cap %s", c.TransportBackoff, TransportBackoffCap)
	case c.MaxConnsPerHost < 0:
		return lifecycle.ConfigErrorf("max_conns_per_host", "must not be negative, got %d", c.MaxConnsPerHost)
	case c.MaxResponseBytes <= 0:
		return lifecycle.ConfigErrorf("max_response_bytes", "must be positive, got %d", c.MaxResponseBytes)
	}
	return c.Retry.Validate()
}

func (r Route) validate(key string) error {
	u, err := parseBaseURL(r.BaseURL)
	if err != nil {
		return lifecycle.ConfigErrorf(key+".base_url", "%w", err)
	}
	if r.H2C && u.Scheme != "http" {
		return lifecycle.ConfigErrorf(key+".h2c", "needs an http:// base_url, got %q (https negotiates HTTP/2 by itself)", r.BaseURL)
	}
	for k, v := range r.Headers {
		if !validHeaderName(k) {
			return lifecycle.ConfigErrorf(key+".headers", "%q is not a valid header name", k)
		}
		if !validHeaderValue(v) {
			return lifecycle.ConfigErrorf(fmt.Sprintf("%s.headers[%q]", key, k), "value contains control characters")
		}
	}
	if strings.ContainsAny(r.Budget, "{}|") {
		return lifecycle.ConfigErrorf(key+".budget", "%q must not contain '{', '}' or '|'", r.Budget)
	}
	if r.APIKeyEnv != "" && !validHeaderName(r.APIKeyEnv) {
		return lifecycle.ConfigErrorf(key+".api_key_env", "%q is not a valid environment variable name", r.APIKeyEnv)
	}
	if !validHeaderValue(r.APIKey.Reveal()) {
		// Never echo the key itself.
		return lifecycle.ConfigErrorf(key+".api_key", "contains control characters")
	}
	return nil
}

// ResolveKeys returns c with every route's APIKey read from its APIKeyEnv
// (through lookup, os.LookupEnv when nil). A route that names a variable
// that is unset or empty fails with a *lifecycle.ConfigError naming the
// route's api_key_env and the variable, never a value. Routes are resolved
// in name order, so the error is the same on every run.
func (c Config) ResolveKeys(lookup func(string) (string, bool)) (Config, error) {
	if lookup == nil {
		lookup = os.LookupEnv
	}
	resolve := func(key string, r Route) (Route, error) {
		if r.APIKeyEnv == "" {
			return r, nil
		}
		v, ok := lookup(r.APIKeyEnv)
		if !ok || v == "" {
			return r, lifecycle.ConfigErrorf(key+".api_key_env", "environment variable %s is empty or not set", r.APIKeyEnv)
		}
		r.APIKey = Secret(v)
		return r, nil
	}
	names := make([]string, 0, len(c.Routes))
	for name := range c.Routes {
		names = append(names, name)
	}
	sort.Strings(names)
	routes := make(map[string]Route, len(c.Routes))
	for _, name := range names {
		rr, err := resolve(fmt.Sprintf("routes[%q]", name), c.Routes[name])
		if err != nil {
			return c, err
		}
		routes[name] = rr
	}
	c.Routes = routes
	if c.Default != nil {
		d, err := resolve("default", *c.Default)
		if err != nil {
			return c, err
		}
		c.Default = &d
	}
	return c, nil
}

// errBaseURLUserInfo refuses credentials in a base URL without echoing it.
var errBaseURLUserInfo = errors.New(`must not contain "@" (no user info: put credentials in api_key_env); value not shown`)

// parseBaseURL checks a route's base URL: http or https, a host, no user
// info, query or fragment. Errors never echo a value that may carry user
// info: any "@" refuses the URL before it is parsed or quoted.
func parseBaseURL(raw string) (*url.URL, error) {
	if raw == "" {
		return nil, errors.New("is required")
	}
	if strings.Contains(raw, "@") {
		return nil, errBaseURLUserInfo
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%q: not a URL: %w", raw, errors.Unwrap(err))
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("%q: scheme must be http or https", raw)
	case u.Host == "":
		return nil, fmt.Errorf("%q: has no host", raw)
	case u.User != nil:
		return nil, errBaseURLUserInfo
	case u.RawQuery != "" || u.Fragment != "" || u.ForceQuery:
		return nil, fmt.Errorf("%q: must not have a query or fragment", raw)
	}
	for _, seg := range strings.Split(u.Path, "/") {
		if seg == "." || seg == ".." {
			return nil, fmt.Errorf("%q: path must not contain '.' or '..' segments", raw)
		}
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	return u, nil
}
