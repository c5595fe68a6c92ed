package queue

import (
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/salvo-run/salvo/pkg/lifecycle"
)

// Defaults for Config fields left zero.
const (
	PrefixDefault          = lifecycle.PrefixDefault
	ReplicasDefault        = 1
	StorageDefault         = FileStorage
	RequestsMaxAgeDefault  = 8 * 24 * time.Hour
	ResultsMaxAgeDefault   = 7 * 24 * time.Hour
	DuplicateWindowDefault = 2 * time.Minute
	// Stream limits. Byte limits are reserved on the server (and the
	// account) when a stream is created: the defaults reserve about 3 GiB
	// of file storage in all.
	RequestsMaxMsgsDefault    = 1_000_000
	RequestsMaxBytesDefault   = 1 << 30 // 1 GiB
	ResultsMaxMsgsDefault     = 2_000_000
	ResultsMaxBytesDefault    = 1 << 30 // 1 GiB
	AdvisoriesMaxMsgsDefault  = 100_000
	AdvisoriesMaxBytesDefault = 64 << 20 // 64 MiB
	BodiesMaxBytesDefault     = 1 << 30  // 1 GiB
	AckWaitDefault            = 6 * time.Second
	MaxDeliverDefault         = 100
	MaxAckPendingDefault      = 20000
	PublishWindowDefault      = 4096
	PublishTimeoutDefault     = 30 * time.Second
	DiscoveryIntervalDefault  = time.Second
	FetchExpiryDefault        = 5 * time.Second
	// MaxFetchBatchDefault caps one pull request even when more slots are free.
	MaxFetchBatchDefault = 256
	// OrphanSweepIntervalDefault is how often a consumer looks for request
	// messages its model consumer has acked but the stream still holds.
	OrphanSweepIntervalDefault = time.Minute
	// ModelInactiveThresholdDefault is how long the server keeps a model
	// consumer nobody pulls from (with nothing unacked) before deleting it.
	ModelInactiveThresholdDefault = time.Hour
	// ModelIdleTimeoutMin is the least default ModelIdleTimeout; the
	// default is the larger of it and 10 × DiscoveryInterval.
	ModelIdleTimeoutMin = time.Minute
)

// Storage is where the streams keep their messages. The zero value is file
// storage; its text form ("file", "memory") is what a config file holds.
type Storage int

// Storage kinds.
const (
	FileStorage Storage = iota
	MemoryStorage
)

func (s Storage) String() string {
	switch s {
	case FileStorage:
		return "file"
	case MemoryStorage:
		return "memory"
	}
	return fmt.Sprintf("Storage(%d)", int(s))
}

// MarshalText writes "file" or "memory".
func (s Storage) MarshalText() ([]byte, error) {
	if s != FileStorage && s != MemoryStorage {
		return nil, fmt.Errorf("queue: unknown storage %d", int(s))
	}
	return []byte(s.String()), nil
}

// UnmarshalText reads "file" or "memory".
func (s *Storage) UnmarshalText(b []byte) error {
	switch string(b) {
	case "file":
		*s = FileStorage
	case "memory":
		*s = MemoryStorage
	default:
		return fmt.Errorf("%q is not file or memory", b)
	}
	return nil
}

// jetstream is the JetStream storage type of s.
func (s Storage) jetstream() jetstream.StorageType {
	if s == MemoryStorage {
		return jetstream.MemoryStorage
	}
	return jetstream.FileStorage
}

// Config configures the JetStream layer. Zero fields take the ...Default
// constants through WithDefaults. The yaml tags name the keys of a
// deployment's "streams" section; untagged fields are not settings.
type Config struct {
	// Prefix is the first subject token and, upper-cased, the stream name
	// prefix: "salvo" gives salvo.req.> in SALVO_REQUESTS.
	Prefix string `yaml:"-"`
	// Replicas of every stream (1 on a single server).
	Replicas int `yaml:"replicas"`
	// Storage of every stream (file by default).
	Storage Storage `yaml:"storage"`
	// RequestsMaxAge bounds how long a queued request may wait.
	RequestsMaxAge time.Duration `yaml:"requests_max_age"`
	// ResultsMaxAge is how long results (and batch events, and large result
	// bodies) are kept for replay.
	ResultsMaxAge time.Duration `yaml:"results_max_age"`
	// RequestsMaxMsgs and RequestsMaxBytes bound REQUESTS. A full REQUESTS
	// refuses publishes (discard new): the publisher gets a
	// *StreamFullError (errors.Is ErrStreamFull) and nothing queued is
	// dropped.
	RequestsMaxMsgs  int64 `yaml:"requests_max_msgs"`
	RequestsMaxBytes int64 `yaml:"requests_max_bytes"`
	// ResultsMaxMsgs and ResultsMaxBytes bound RESULTS (results and batch
	// events). A full RESULTS drops its oldest messages (discard old), as
	// ResultsMaxAge does: results not read by then are gone from the
	// stream (the records in Redis keep their state).
	ResultsMaxMsgs  int64 `yaml:"results_max_msgs"`
	ResultsMaxBytes int64 `yaml:"results_max_bytes"`
	// AdvisoriesMaxMsgs and AdvisoriesMaxBytes bound ADVISORIES (discard
	// old: when full, the oldest unhandled advisories go first).
	AdvisoriesMaxMsgs  int64 `yaml:"advisories_max_msgs"`
	AdvisoriesMaxBytes int64 `yaml:"advisories_max_bytes"`
	// BodiesMaxBytes bounds the BODIES object store. Its objects are split
	// into chunks of at most 128 KiB, so the byte limit bounds the number
	// of messages too. A full store refuses new bodies: the result that
	// needed one fails to publish and is retried.
	BodiesMaxBytes int64 `yaml:"bodies_max_bytes"`
	// DuplicateWindow is the Nats-Msg-Id dedup window of both streams.
	DuplicateWindow time.Duration `yaml:"duplicate_window"`
	// AckWait is the per-delivery redelivery timer of the model consumers;
	// default 6s. With the lease TTL it bounds how long the requests of a
	// killed worker wait before another worker runs them.
	AckWait time.Duration `yaml:"ack_wait"`
	// MaxDeliver is a large safety bound on deliveries per message; retries
	// (delayed naks) count too. A message delivered this often ends its
	// request failed (max_deliveries; ConsumeOptions.OnPoison in code).
	MaxDeliver int `yaml:"max_deliver"`
	// MaxAckPending bounds one model consumer's unacked messages across all
	// workers: in-flight plus parked delayed naks.
	MaxAckPending int `yaml:"max_ack_pending"`
	// PublishWindow is the maximum number of un-acked async publishes of one
	// Publisher; Publish blocks while it is full.
	PublishWindow int
	// PublishTimeout bounds the wait for one publish acknowledgement.
	PublishTimeout time.Duration
	// DiscoveryInterval is how often the discovery leader lists the models
	// with queued messages, and how often every consumer takes its turn in
	// the leader election; the leader's lease is three intervals (at least
	// 1s). Announced models are started at once, whatever the interval; an
	// unannounced one waits up to about one interval (discovery.go).
	DiscoveryInterval time.Duration
	// FetchExpiry is the lifetime of one pull request.
	FetchExpiry time.Duration
	// MaxFetchBatch caps the size of one pull request.
	MaxFetchBatch int
	// OrphanSweepInterval is how often Consume looks for orphans: request
	// messages at or below their model consumer's ack floor that the stream
	// still stores (an ack racing a server shutdown; see orphans.go). Each
	// sweep costs one stream info call, plus a consumer info call per model
	// with stored messages.
	OrphanSweepInterval time.Duration
	// ModelInactiveThreshold is the InactiveThreshold of every model
	// consumer: the server deletes a consumer without pull requests and
	// without unacked messages for this long, so models nobody asks for any
	// more leave no consumers behind. A fetch loop's long polls keep its
	// consumer active and the loop recreates a deleted one.
	ModelInactiveThreshold time.Duration
	// ModelIdleTimeout is how long a model's fetch loop runs without
	// receiving a message before it stops itself (when the stream holds no
	// message of the model); discovery starts it again when messages
	// appear. A Publisher announces a model again once half of it has
	// passed since its last announcement. Default: max(10 ×
	// DiscoveryInterval, ModelIdleTimeoutMin).
	ModelIdleTimeout time.Duration
}

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	if c.Prefix == "" {
		c.Prefix = PrefixDefault
	}
	if c.Replicas == 0 {
		c.Replicas = ReplicasDefault
	}
	if c.RequestsMaxAge == 0 {
		c.RequestsMaxAge = RequestsMaxAgeDefault
	}
	if c.ResultsMaxAge == 0 {
		c.ResultsMaxAge = ResultsMaxAgeDefault
	}
	if c.DuplicateWindow == 0 {
		c.DuplicateWindow = DuplicateWindowDefault
	}
	c = c.limitsWithDefaults()
	if c.AckWait == 0 {
		c.AckWait = AckWaitDefault
	}
	if c.MaxDeliver == 0 {
		c.MaxDeliver = MaxDeliverDefault
	}
	if c.MaxAckPending == 0 {
		c.MaxAckPending = MaxAckPendingDefault
	}
	if c.PublishWindow == 0 {
		c.PublishWindow = PublishWindowDefault
	}
	if c.PublishTimeout == 0 {
		c.PublishTimeout = PublishTimeoutDefault
	}
	if c.DiscoveryInterval == 0 {
		c.DiscoveryInterval = DiscoveryIntervalDefault
	}
	if c.FetchExpiry == 0 {
		c.FetchExpiry = FetchExpiryDefault
	}
	if c.MaxFetchBatch == 0 {
		c.MaxFetchBatch = MaxFetchBatchDefault
	}
	if c.OrphanSweepInterval == 0 {
		c.OrphanSweepInterval = OrphanSweepIntervalDefault
	}
	if c.ModelInactiveThreshold == 0 {
		c.ModelInactiveThreshold = ModelInactiveThresholdDefault
	}
	if c.ModelIdleTimeout == 0 {
		c.ModelIdleTimeout = max(10*c.DiscoveryInterval, ModelIdleTimeoutMin)
	}
	return c
}

// Validate reports the first invalid field as a *lifecycle.ConfigError
// named by its key (ack_wait, max_deliver, …), wrapped with
// ErrInvalidConfig. Storage's zero value is file storage, so it needs no
// default.
func (c Config) Validate() error {
	bad := func(key, format string, args ...any) error {
		return fmt.Errorf("%w: %w", ErrInvalidConfig, lifecycle.ConfigErrorf(key, format, args...))
	}
	if err := lifecycle.CheckPrefix(c.Prefix); err != nil {
		return bad("prefix", "%w", err)
	}
	switch {
	case c.Replicas < 1 || c.Replicas > 5:
		return bad("replicas", "%d must be between 1 and 5", c.Replicas)
	case c.Storage != FileStorage && c.Storage != MemoryStorage:
		return bad("storage", "%v must be file or memory", c.Storage)
	case c.RequestsMaxAge <= 0:
		return bad("requests_max_age", "%s must be positive", c.RequestsMaxAge)
	case c.ResultsMaxAge <= 0:
		return bad("results_max_age", "%s must be positive", c.ResultsMaxAge)
	}
	if err := c.validateLimits(); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	switch {
	case c.DuplicateWindow <= 0:
		return bad("duplicate_window", "%s must be positive", c.DuplicateWindow)
	case c.DuplicateWindow > c.RequestsMaxAge || c.DuplicateWindow > c.ResultsMaxAge:
		return bad("duplicate_window", "%s must not exceed requests_max_age or results_max_age", c.DuplicateWindow)
	case c.AckWait < 100*time.Millisecond:
		return bad("ack_wait", "%s must be at least 100ms", c.AckWait)
	case c.DuplicateWindow < 2*c.AckWait:
		// A worker that dies after publishing a result and before marking
		// it published leaves the message to be redelivered after AckWait;
		// the redelivery publishes the result again, which only the
		// duplicate window keeps from being a second result.
		return bad("duplicate_window", "%s must be at least twice ack_wait (%s): a result republished after a crash is deduplicated only inside it", c.DuplicateWindow, c.AckWait)
	case c.MaxDeliver < 2:
		return bad("max_deliver", "%d must be at least 2", c.MaxDeliver)
	case c.MaxAckPending < 1:
		return bad("max_ack_pending", "%d must be positive", c.MaxAckPending)
	case c.PublishWindow < 1:
		return bad("publish_window", "%d must be positive", c.PublishWindow)
	case c.PublishTimeout <= 0:
		return bad("publish_timeout", "%s must be positive", c.PublishTimeout)
	case c.DiscoveryInterval < 10*time.Millisecond:
		return bad("discovery_interval", "%s must be at least 10ms", c.DiscoveryInterval)
	case c.FetchExpiry < 200*time.Millisecond:
		return bad("fetch_expiry", "%s must be at least 200ms", c.FetchExpiry)
	case c.MaxFetchBatch < 1:
		return bad("max_fetch_batch", "%d must be positive", c.MaxFetchBatch)
	case c.OrphanSweepInterval < 100*time.Millisecond:
		return bad("orphan_sweep_interval", "%s must be at least 100ms", c.OrphanSweepInterval)
	case c.ModelInactiveThreshold < 2*c.FetchExpiry:
		return bad("model_inactive_threshold", "%s must be at least 2 × fetch_expiry (%s)", c.ModelInactiveThreshold, c.FetchExpiry)
	case c.ModelIdleTimeout < 2*c.FetchExpiry || c.ModelIdleTimeout < 2*c.DiscoveryInterval:
		return bad("model_idle_timeout", "%s must be at least 2 × fetch_expiry and 2 × discovery_interval", c.ModelIdleTimeout)
	}
	return nil
}

// limitsWithDefaults sets every zero stream limit to its default.
func (c Config) limitsWithDefaults() Config {
	for _, l := range c.limits() {
		if *l.value == 0 {
			*l.value = l.def
		}
	}
	return c
}

// validateLimits reports the first stream limit below 1.
func (c Config) validateLimits() error {
	for _, l := range c.limits() {
		if *l.value < 1 {
			return lifecycle.ConfigErrorf(l.key, "%d must be positive", *l.value)
		}
	}
	return nil
}

// streamLimit is one byte or message limit of a stream.
type streamLimit struct {
	key   string
	value *int64
	def   int64
}

// limits lists the stream limits of c (pointers into c).
func (c *Config) limits() []streamLimit {
	return []streamLimit{
		{"requests_max_msgs", &c.RequestsMaxMsgs, RequestsMaxMsgsDefault},
		{"requests_max_bytes", &c.RequestsMaxBytes, RequestsMaxBytesDefault},
		{"results_max_msgs", &c.ResultsMaxMsgs, ResultsMaxMsgsDefault},
		{"results_max_bytes", &c.ResultsMaxBytes, ResultsMaxBytesDefault},
		{"advisories_max_msgs", &c.AdvisoriesMaxMsgs, AdvisoriesMaxMsgsDefault},
		{"advisories_max_bytes", &c.AdvisoriesMaxBytes, AdvisoriesMaxBytesDefault},
		{"bodies_max_bytes", &c.BodiesMaxBytes, BodiesMaxBytesDefault},
	}
}
