package demo

import (
	"errors"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/salvo-run/salvo/pkg/httpclient"
)

// Options defaults.
const (
	InputDefault   = "examples/batch.jsonl"
	OutputDefault  = "out/demo-output.jsonl"
	ErrorsDefault  = "out/demo-errors.jsonl"
	TimeoutDefault = 45 * time.Second
	// PollIntervalDefault is how often the producer reads the counters.
	PollIntervalDefault = 100 * time.Millisecond
	// WorkersDefault is the number of in-process workers.
	WorkersDefault = 2
	// workersMax bounds Workers.
	workersMax = 16
)

// RedisMode chooses the Redis the demo runs on.
type RedisMode string

// Redis modes. RedisAuto takes RedisURL when set, else a redis-server
// found on PATH, else the in-process stand-in.
const (
	RedisAuto      RedisMode = "auto"
	RedisURLMode   RedisMode = "url"
	RedisServer    RedisMode = "server"
	RedisMiniredis RedisMode = "miniredis"
)

// Options configure Run. The zero value plus WithDefaults is valid.
type Options struct {
	// Input is the OpenAI batch input file (JSONL).
	Input string
	// Output and Errors are the files written at the end; their
	// directories are created.
	Output string
	Errors string
	// Redis chooses the Redis; default RedisAuto.
	Redis RedisMode
	// RedisURL is an existing Redis to use (cmd/demo passes REDIS_URL).
	// The demo's keys live under a prefix of their own and are deleted at
	// the end.
	RedisURL string
	// NATSURL is an existing NATS server with JetStream to run on instead
	// of the embedded one (cmd/demo passes NATS_URL). The demo's streams
	// carry a prefix of their own and are deleted at the end.
	NATSURL string
	// Workers is the number of in-process workers; default 2.
	Workers int
	// UpstreamURL is an OpenAI-compatible API (scheme, host, optional
	// path prefix) to call instead of the mock (cmd/demo passes
	// SALVO_DEMO_UPSTREAM_URL).
	UpstreamURL string
	// APIKey is sent to UpstreamURL as a bearer token (cmd/demo passes
	// OPENAI_API_KEY); never printed. Without UpstreamURL it is not used.
	APIKey httpclient.Secret
	// Model, when set, replaces body.model in every input line that names
	// one (cmd/demo passes SALVO_DEMO_MODEL), for an upstream that serves
	// other models than the example's.
	Model string
	// Terminal draws the progress as a bar redrawn in place; otherwise
	// plain lines (cmd/demo: whether stdout is a terminal).
	Terminal bool
	// Timeout bounds the whole run; default 45s.
	Timeout time.Duration
	// PollInterval is how often progress is read; default 100ms.
	PollInterval time.Duration
	// Out receives the human-readable progress and summary; default
	// io.Discard.
	Out io.Writer
	// Logger receives the components' logs; default disabled.
	Logger *zerolog.Logger
}

// WithDefaults returns o with every unset field at its default.
func (o Options) WithDefaults() Options {
	if o.Input == "" {
		o.Input = InputDefault
	}
	if o.Output == "" {
		o.Output = OutputDefault
	}
	if o.Errors == "" {
		o.Errors = ErrorsDefault
	}
	if o.Redis == "" {
		o.Redis = RedisAuto
	}
	if o.Workers == 0 {
		o.Workers = WorkersDefault
	}
	if o.Timeout == 0 {
		o.Timeout = TimeoutDefault
	}
	if o.PollInterval == 0 {
		o.PollInterval = PollIntervalDefault
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
	if o.Logger == nil {
		l := zerolog.Nop()
		o.Logger = &l
	}
	return o
}

// ErrInvalidOptions is wrapped by every Validate error.
var ErrInvalidOptions = errors.New("demo: invalid options")

// Validate reports the first invalid field by name.
func (o Options) Validate() error {
	switch {
	case o.Input == "":
		return fmt.Errorf("%w: Input is required", ErrInvalidOptions)
	case o.Output == "" || o.Errors == "":
		return fmt.Errorf("%w: Output and Errors are required", ErrInvalidOptions)
	case o.Output == o.Errors:
		return fmt.Errorf("%w: Output and Errors must be different files", ErrInvalidOptions)
	case o.Timeout <= 0:
		return fmt.Errorf("%w: Timeout %s must be positive", ErrInvalidOptions, o.Timeout)
	case o.PollInterval <= 0:
		return fmt.Errorf("%w: PollInterval %s must be positive", ErrInvalidOptions, o.PollInterval)
	case o.Workers < 1 || o.Workers > workersMax:
		return fmt.Errorf("%w: Workers %d must be 1 to %d", ErrInvalidOptions, o.Workers, workersMax)
	}
	if o.NATSURL != "" {
		for _, u := range strings.Split(o.NATSURL, ",") { // a server list, as nats.Connect takes it
			if err := checkURL("NATSURL", strings.TrimSpace(u), "nats", "tls", "ws", "wss"); err != nil {
				return err
			}
		}
	}
	if err := checkURL("UpstreamURL", o.UpstreamURL, "http", "https"); err != nil {
		return err
	}
	switch o.Redis {
	case RedisAuto, RedisServer, RedisMiniredis:
	case RedisURLMode:
		if o.RedisURL == "" {
			return fmt.Errorf("%w: RedisURL is required with Redis %q", ErrInvalidOptions, o.Redis)
		}
	default:
		return fmt.Errorf("%w: Redis %q is not one of auto, url, server, miniredis", ErrInvalidOptions, o.Redis)
	}
	return nil
}

// checkURL accepts an empty value or a URL with one of schemes and a
// host. The error names the field but never shows the value (it may hold
// a password).
func checkURL(field, value string, schemes ...string) error {
	if value == "" {
		return nil
	}
	u, err := url.Parse(value)
	if err != nil || u.Host == "" || !slices.Contains(schemes, u.Scheme) {
		return fmt.Errorf("%w: %s is not a %s URL with a host", ErrInvalidOptions, field, strings.Join(schemes, "|")+"://")
	}
	return nil
}
