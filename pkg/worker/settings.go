package worker

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/salvo-run/salvo/pkg/lifecycle"
)

// Settings is the worker process's whole configuration: what to connect to,
// how to route models upstream, and how the engine behaves.
//
// Precedence, lowest to highest: built-in defaults, the YAML file
// (-config or SALVO_CONFIG), environment variables (SALVO_*), flags. Every
// knob has a default; Load fails naming the field when a value is invalid.
type Settings struct {
	NATSURL  string `yaml:"nats_url"`
	RedisURL string `yaml:"redis_url"`
	// RedisAddrs, when set, selects a Sentinel (with RedisMaster) or Cluster
	// client instead of RedisURL.
	RedisAddrs  []string `yaml:"redis_addrs"`
	RedisMaster string   `yaml:"redis_master"`
	Prefix      string   `yaml:"prefix"`
	HTTPAddr    string   `yaml:"http_addr"`
	LogLevel    string   `yaml:"log_level"`

	Streams  StreamSettings   `yaml:"streams"`
	Lease    LeaseSettings    `yaml:"lease"`
	Upstream UpstreamSettings `yaml:"upstream"`
	Retry    RetrySettings    `yaml:"retry"`

	Concurrency       Concurrency   `yaml:"concurrency"`
	HeartbeatInterval time.Duration `yaml:"heartbeat_interval"`
	ShutdownGrace     time.Duration `yaml:"shutdown_grace"`
}

// StreamSettings tune the JetStream streams and consumers.
type StreamSettings struct {
	Replicas        int           `yaml:"replicas"`
	Storage         string        `yaml:"storage"` // file | memory
	RequestsMaxAge  time.Duration `yaml:"requests_max_age"`
	ResultsMaxAge   time.Duration `yaml:"results_max_age"`
	DuplicateWindow time.Duration `yaml:"duplicate_window"`
	AckWait         time.Duration `yaml:"ack_wait"`
	MaxDeliver      int           `yaml:"max_deliver"`
	MaxAckPending   int           `yaml:"max_ack_pending"`
}

// LeaseSettings tune the Redis leases and record retention.
type LeaseSettings struct {
	TTL         time.Duration `yaml:"ttl"`
	MaxReclaims int           `yaml:"max_reclaims"`
	Retention   time.Duration `yaml:"retention"`
}

// RouteSettings is one upstream route. The API key is never in the file:
// APIKeyEnv names the environment variable that holds it.
type RouteSettings struct {
	BaseURL            string            `yaml:"base_url"`
	APIKeyEnv          string            `yaml:"api_key_env"`
	Headers            map[string]string `yaml:"headers"`
	AllowRequestAPIKey bool              `yaml:"allow_request_api_key"`
}

// UpstreamSettings route models to upstream APIs.
type UpstreamSettings struct {
	Routes           map[string]RouteSettings `yaml:"routes"`
	Default          *RouteSettings           `yaml:"default"`
	ConnectTimeout   time.Duration            `yaml:"connect_timeout"`
	FirstByteTimeout time.Duration            `yaml:"first_byte_timeout"`
	IdleTimeout      time.Duration            `yaml:"idle_timeout"`
	BodyTimeout      time.Duration            `yaml:"body_timeout"`
	UploadStall      time.Duration            `yaml:"upload_stall_timeout"`
	TransportRetries int                      `yaml:"transport_retries"`
	TransportBackoff time.Duration            `yaml:"transport_backoff"`
	MaxResponseBytes int64                    `yaml:"max_response_bytes"`
}

// RetrySettings mirror lifecycle.RetryPolicy with pointer fields so that an
// explicit 0 (e.g. max_retries: 0) differs from "not set".
type RetrySettings struct {
	Backoff                time.Duration `yaml:"backoff"`
	BackoffFactor          float64       `yaml:"backoff_factor"`
	MaxBackoff             time.Duration `yaml:"max_backoff"`
	Jitter                 float64       `yaml:"jitter"`
	MaxRetries             *int          `yaml:"max_retries"`
	StopBeforeDeadline     time.Duration `yaml:"stop_before_deadline"`
	ExtraRetriableStatuses *[]int        `yaml:"extra_retriable_statuses"`
}

// Policy converts the settings to a complete retry policy.
func (r RetrySettings) Policy() lifecycle.RetryPolicy {
	p := lifecycle.RetryPolicy{
		Backoff: r.Backoff, BackoffFactor: r.BackoffFactor, MaxBackoff: r.MaxBackoff,
		Jitter: r.Jitter, StopBeforeDeadline: r.StopBeforeDeadline,
	}
	if r.ExtraRetriableStatuses != nil {
		p.ExtraRetriableStatuses = append([]int{}, (*r.ExtraRetriableStatuses)...)
	}
	if r.MaxRetries != nil {
		p = p.WithMaxRetries(*r.MaxRetries)
	}
	return p.WithDefaults()
}

// Settings defaults.
const (
	NATSURLDefault  = "nats://127.0.0.1:4222"
	RedisURLDefault = "redis://127.0.0.1:6379"
	PrefixDefault   = "salvo"
	HTTPAddrDefault = "127.0.0.1:8081"
	LogLevelDefault = "info"
)

// DefaultSettings returns the built-in defaults.
func DefaultSettings() Settings {
	return Settings{
		NATSURL:     NATSURLDefault,
		RedisURL:    RedisURLDefault,
		Prefix:      PrefixDefault,
		HTTPAddr:    HTTPAddrDefault,
		LogLevel:    LogLevelDefault,
		Concurrency: Concurrency{Default: ConcurrencyDefault},
	}
}

// Load builds Settings from defaults, the YAML file, the environment and the
// flags in args, in that order of precedence (flags win).
func Load(args []string, getenv func(string) string) (Settings, error) {
	s := DefaultSettings()
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	fs.SetOutput(new(bytes.Buffer))
	var (
		configPath  = fs.String("config", "", "YAML config file (env SALVO_CONFIG)")
		natsURL     = fs.String("nats-url", "", "NATS server URL (env SALVO_NATS_URL)")
		redisURL    = fs.String("redis-url", "", "Redis URL (env SALVO_REDIS_URL)")
		prefix      = fs.String("prefix", "", "subject and key prefix (env SALVO_PREFIX)")
		httpAddr    = fs.String("http-addr", "", "health endpoint address (env SALVO_HTTP_ADDR)")
		logLevel    = fs.String("log-level", "", "debug|info|warn|error (env SALVO_LOG_LEVEL)")
		concurrency = fs.Int("concurrency", 0, "default per-model in-flight limit (env SALVO_CONCURRENCY)")
		grace       = fs.Duration("shutdown-grace", 0, "time in-flight calls get at shutdown (env SALVO_SHUTDOWN_GRACE)")
		upstreamURL = fs.String("upstream-url", "", "base URL of the default route (env SALVO_UPSTREAM_URL)")
		upstreamKey = fs.String("upstream-key-env", "", "env var holding the default route's API key (env SALVO_UPSTREAM_KEY_ENV)")
	)
	if err := fs.Parse(args); err != nil {
		return s, fmt.Errorf("flags: %w", err)
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })

	path := getenv("SALVO_CONFIG")
	if set["config"] {
		path = *configPath
	}
	if path != "" {
		if err := s.readFile(path); err != nil {
			return s, err
		}
	}

	// Environment, then flags: each layer overrides the one before.
	str := func(dst *string, env, flagName string, flagVal *string) {
		if v := getenv(env); v != "" {
			*dst = v
		}
		if set[flagName] {
			*dst = *flagVal
		}
	}
	str(&s.NATSURL, "SALVO_NATS_URL", "nats-url", natsURL)
	str(&s.RedisURL, "SALVO_REDIS_URL", "redis-url", redisURL)
	str(&s.Prefix, "SALVO_PREFIX", "prefix", prefix)
	str(&s.HTTPAddr, "SALVO_HTTP_ADDR", "http-addr", httpAddr)
	str(&s.LogLevel, "SALVO_LOG_LEVEL", "log-level", logLevel)

	if v := getenv("SALVO_CONCURRENCY"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return s, fmt.Errorf("SALVO_CONCURRENCY: %q is not an integer", v)
		}
		s.Concurrency.Default = n
	}
	if set["concurrency"] {
		s.Concurrency.Default = *concurrency
	}
	if v := getenv("SALVO_SHUTDOWN_GRACE"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			return s, fmt.Errorf("SALVO_SHUTDOWN_GRACE: %q is not a duration", v)
		}
		s.ShutdownGrace = d
	}
	if set["shutdown-grace"] {
		s.ShutdownGrace = *grace
	}
	var defURL, defKey string
	str(&defURL, "SALVO_UPSTREAM_URL", "upstream-url", upstreamURL)
	str(&defKey, "SALVO_UPSTREAM_KEY_ENV", "upstream-key-env", upstreamKey)
	if defURL != "" || defKey != "" {
		if s.Upstream.Default == nil {
			s.Upstream.Default = &RouteSettings{}
		}
		if defURL != "" {
			s.Upstream.Default.BaseURL = defURL
		}
		if defKey != "" {
			s.Upstream.Default.APIKeyEnv = defKey
		}
	}
	return s, s.Validate()
}

func (s *Settings) readFile(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config file: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(s); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	return nil
}

// Validate checks what the engine and the clients do not check themselves.
func (s Settings) Validate() error {
	switch {
	case s.NATSURL == "":
		return errors.New("nats_url: is required")
	case s.RedisURL == "" && len(s.RedisAddrs) == 0:
		return errors.New("redis_url: is required (or redis_addrs)")
	case s.Prefix == "":
		return errors.New("prefix: is required")
	}
	if _, err := lifecycle.EncodeToken(s.Prefix); err != nil || lifecycle.MustEncodeToken(s.Prefix) != s.Prefix {
		return fmt.Errorf("prefix: %q must use only letters, digits and '-'", s.Prefix)
	}
	switch s.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("log_level: %q is not one of debug, info, warn, error", s.LogLevel)
	}
	switch s.Streams.Storage {
	case "", "file", "memory":
	default:
		return fmt.Errorf("streams.storage: %q is not file or memory", s.Streams.Storage)
	}
	p := s.Retry.Policy()
	if err := p.Validate(); err != nil {
		return err
	}
	if err := s.Concurrency.Validate(); err != nil {
		return err
	}
	if err := s.QueueConfig().WithDefaults().Validate(); err != nil {
		return fmt.Errorf("streams: %w", err)
	}
	if err := s.StateConfig().WithDefaults().Validate(); err != nil {
		return fmt.Errorf("lease: %w", err)
	}
	if budget := s.keepAliveBudget(); s.heartbeat() > budget/2 {
		return fmt.Errorf("heartbeat_interval: %s must be at most half of the shorter of streams.ack_wait and lease.ttl (%s)", s.heartbeat(), budget)
	}
	if s.Streams.MaxDeliver != 0 && p.MaxRetries != lifecycle.NoRetryLimit {
		if need := p.MaxRetries + 1 + s.StateConfig().WithDefaults().MaxReclaims; s.Streams.MaxDeliver <= need {
			return fmt.Errorf("streams.max_deliver: %d must exceed retry.max_retries + 1 + lease.max_reclaims = %d (every retry is a delivery)", s.Streams.MaxDeliver, need)
		}
	}
	return nil
}
