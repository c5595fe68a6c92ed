package queue

import (
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Defaults for Config fields left zero.
const (
	PrefixDefault            = "salvo"
	ReplicasDefault          = 1
	StorageDefault           = jetstream.FileStorage
	RequestsMaxAgeDefault    = 8 * 24 * time.Hour
	ResultsMaxAgeDefault     = 7 * 24 * time.Hour
	DuplicateWindowDefault   = 2 * time.Minute
	AckWaitDefault           = 30 * time.Second
	MaxDeliverDefault        = 100
	MaxAckPendingDefault     = 20000
	PublishWindowDefault     = 4096
	PublishTimeoutDefault    = 30 * time.Second
	DiscoveryIntervalDefault = time.Second
	FetchExpiryDefault       = 5 * time.Second
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

// Config configures the JetStream layer. Zero fields take the ...Default
// constants through WithDefaults.
type Config struct {
	// Prefix is the first subject token and, upper-cased, the stream name
	// prefix: "salvo" gives salvo.req.> in SALVO_REQUESTS.
	Prefix string
	// Replicas of every stream (1 on a single server).
	Replicas int
	// Storage of every stream (file by default).
	Storage jetstream.StorageType
	// RequestsMaxAge bounds how long a queued request may wait.
	RequestsMaxAge time.Duration
	// ResultsMaxAge is how long results (and batch events, and large result
	// bodies) are kept for replay.
	ResultsMaxAge time.Duration
	// DuplicateWindow is the Nats-Msg-Id dedup window of both streams.
	DuplicateWindow time.Duration
	// AckWait is the per-delivery redelivery timer of the model consumers.
	AckWait time.Duration
	// MaxDeliver is a large safety bound on deliveries per message; retries
	// (delayed naks) count too. Exhausted messages go to OnMaxDeliveries.
	MaxDeliver int
	// MaxAckPending bounds one model consumer's unacked messages across all
	// workers: in-flight plus parked delayed naks.
	MaxAckPending int
	// PublishWindow is the maximum number of un-acked async publishes of one
	// Publisher; Publish blocks while it is full.
	PublishWindow int
	// PublishTimeout bounds the wait for one publish acknowledgement.
	PublishTimeout time.Duration
	// DiscoveryInterval is how often Consume looks for models with queued
	// messages.
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
	// appear. Default: max(10 × DiscoveryInterval, ModelIdleTimeoutMin).
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

// Validate reports the first invalid field by name. Storage's zero value is
// file storage, so it needs no default.
func (c Config) Validate() error {
	bad := func(field, format string, args ...any) error {
		return fmt.Errorf("%w: %s: %s", ErrInvalidConfig, field, fmt.Sprintf(format, args...))
	}
	if !validPrefix(c.Prefix) {
		return bad("Prefix", "%q must be 1-32 letters, digits or '-'", c.Prefix)
	}
	switch {
	case c.Replicas < 1 || c.Replicas > 5:
		return bad("Replicas", "%d must be between 1 and 5", c.Replicas)
	case c.Storage != jetstream.FileStorage && c.Storage != jetstream.MemoryStorage:
		return bad("Storage", "%v must be file or memory", c.Storage)
	case c.RequestsMaxAge <= 0:
		return bad("RequestsMaxAge", "%s must be positive", c.RequestsMaxAge)
	case c.ResultsMaxAge <= 0:
		return bad("ResultsMaxAge", "%s must be positive", c.ResultsMaxAge)
	case c.DuplicateWindow <= 0:
		return bad("DuplicateWindow", "%s must be positive", c.DuplicateWindow)
	case c.DuplicateWindow > c.RequestsMaxAge || c.DuplicateWindow > c.ResultsMaxAge:
		return bad("DuplicateWindow", "%s must not exceed RequestsMaxAge or ResultsMaxAge", c.DuplicateWindow)
	case c.AckWait < 100*time.Millisecond:
		return bad("AckWait", "%s must be at least 100ms", c.AckWait)
	case c.MaxDeliver < 2:
		return bad("MaxDeliver", "%d must be at least 2", c.MaxDeliver)
	case c.MaxAckPending < 1:
		return bad("MaxAckPending", "%d must be positive", c.MaxAckPending)
	case c.PublishWindow < 1:
		return bad("PublishWindow", "%d must be positive", c.PublishWindow)
	case c.PublishTimeout <= 0:
		return bad("PublishTimeout", "%s must be positive", c.PublishTimeout)
	case c.DiscoveryInterval < 10*time.Millisecond:
		return bad("DiscoveryInterval", "%s must be at least 10ms", c.DiscoveryInterval)
	case c.FetchExpiry < 200*time.Millisecond:
		return bad("FetchExpiry", "%s must be at least 200ms", c.FetchExpiry)
	case c.MaxFetchBatch < 1:
		return bad("MaxFetchBatch", "%d must be positive", c.MaxFetchBatch)
	case c.OrphanSweepInterval < 100*time.Millisecond:
		return bad("OrphanSweepInterval", "%s must be at least 100ms", c.OrphanSweepInterval)
	case c.ModelInactiveThreshold < 2*c.FetchExpiry:
		return bad("ModelInactiveThreshold", "%s must be at least 2 × FetchExpiry (%s)", c.ModelInactiveThreshold, c.FetchExpiry)
	case c.ModelIdleTimeout < 2*c.FetchExpiry || c.ModelIdleTimeout < 2*c.DiscoveryInterval:
		return bad("ModelIdleTimeout", "%s must be at least 2 × FetchExpiry and 2 × DiscoveryInterval", c.ModelIdleTimeout)
	}
	return nil
}

func validPrefix(p string) bool {
	if p == "" || len(p) > 32 {
		return false
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		plain := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-'
		if !plain {
			return false
		}
	}
	return true
}
