package state

import (
	"errors"
	"fmt"
	"time"

	"github.com/rs/zerolog"

	"github.com/salvo-run/salvo/pkg/lifecycle"
)

// Config defaults.
const (
	PrefixDefault      = lifecycle.PrefixDefault
	LeaseTTLDefault    = 6 * time.Second
	RetentionDefault   = 7 * 24 * time.Hour
	MaxReclaimsDefault = 5
	WaitTimeoutDefault = time.Second
)

// Config configures a Store. The zero value plus WithDefaults is valid. The
// yaml tags name the keys of a deployment's "lease" section.
type Config struct {
	// Prefix starts every key; default "salvo". It follows
	// lifecycle.CheckPrefix (so it cannot break the batch hash tag).
	Prefix string `yaml:"-"`
	// LeaseTTL is how long a claim or refresh holds a request; default 6s.
	// A killed worker's requests are reclaimable this long after its last
	// refresh, so it bounds crash recovery together with AckWait.
	LeaseTTL time.Duration `yaml:"ttl"`
	// Retention is how long terminal request records and finalized batches
	// are kept, and how long past its expires_at a batch's keys (and a
	// request that never ended) are kept; default 7 days.
	Retention time.Duration `yaml:"retention"`
	// MaxReclaims bounds reclaims after lease expiry: a request reclaimed
	// more often ends failed with the code max_deliveries (crash-loop
	// guard); default 5.
	MaxReclaims int `yaml:"max_reclaims"`
	// WaitReplicas makes every state write wait until this many replicas
	// have it (Redis WAIT) before the write counts as done; default 0
	// (off). Redis replicates asynchronously: without it, a Sentinel
	// failover onto a replica that lags loses the primary's last writes,
	// and a result the worker already published can lose its record (the
	// request then ends twice). With it, a write the replicas did not
	// confirm within WaitTimeout fails as "Redis unavailable": the worker
	// neither publishes nor acks on it, and retries. Each pipeline of
	// writes costs one more replication round trip. Set it to 1 with
	// Sentinel and a replica; with no replica every write fails. Not
	// supported with Redis Cluster.
	WaitReplicas int `yaml:"wait_replicas"`
	// WaitTimeout bounds each wait for the replicas (WaitReplicas above
	// 0); default 1s. A write not confirmed by then fails as "Redis
	// unavailable". Keep it above the replicas' usual lag and well below
	// LeaseTTL: a claim's lease runs while it waits.
	WaitTimeout time.Duration `yaml:"wait_timeout"`
	// Clock is the time source passed into every script; default time.Now.
	Clock func() time.Time `yaml:"-"`
	// Logger receives the store's rare diagnostic events; default disabled.
	Logger *zerolog.Logger `yaml:"-"`
}

// WithDefaults returns c with every unset field at its default.
func (c Config) WithDefaults() Config {
	if c.Prefix == "" {
		c.Prefix = PrefixDefault
	}
	if c.LeaseTTL == 0 {
		c.LeaseTTL = LeaseTTLDefault
	}
	if c.Retention == 0 {
		c.Retention = RetentionDefault
	}
	if c.MaxReclaims == 0 {
		c.MaxReclaims = MaxReclaimsDefault
	}
	if c.WaitTimeout == 0 {
		c.WaitTimeout = WaitTimeoutDefault
	}
	if c.Clock == nil {
		c.Clock = time.Now
	}
	if c.Logger == nil {
		l := zerolog.Nop()
		c.Logger = &l
	}
	return c
}

// ErrInvalidConfig is wrapped by every Validate error.
var ErrInvalidConfig = errors.New("state: invalid config")

// Validate reports the first invalid field as a *lifecycle.ConfigError
// named by its key (ttl, retention, …), wrapped with ErrInvalidConfig.
func (c Config) Validate() error {
	bad := func(key, format string, args ...any) error {
		return fmt.Errorf("%w: %w", ErrInvalidConfig, lifecycle.ConfigErrorf(key, format, args...))
	}
	if err := lifecycle.CheckPrefix(c.Prefix); err != nil {
		return bad("prefix", "%w", err)
	}
	switch {
	case c.LeaseTTL < time.Millisecond:
		return bad("ttl", "%s must be at least 1ms", c.LeaseTTL)
	case c.Retention < time.Millisecond:
		return bad("retention", "%s must be at least 1ms", c.Retention)
	case c.MaxReclaims < 0:
		return bad("max_reclaims", "%d must not be negative", c.MaxReclaims)
	case c.WaitReplicas < 0:
		return bad("wait_replicas", "%d must not be negative", c.WaitReplicas)
	case c.WaitTimeout < time.Millisecond:
		return bad("wait_timeout", "%s must be at least 1ms", c.WaitTimeout)
	case c.Clock == nil:
		return bad("clock", "must not be nil")
	}
	return nil
}
