package worker

import (
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"time"

	"github.com/salvo-run/salvo/pkg/lifecycle"
	"github.com/salvo-run/salvo/pkg/ratelimit"
)

// Engine defaults.
const (
	ConcurrencyDefault       = 64
	HeartbeatIntervalDefault = 2 * time.Second
	ShutdownGraceDefault     = 30 * time.Second
	GlobalSlotTTLDefault     = 6 * time.Second
	GlobalSlotPollDefault    = 200 * time.Millisecond
	MarkFlushIntervalDefault = 20 * time.Millisecond
	OpTimeoutDefault         = 10 * time.Second
	LogOutcomesDefault       = 10

	UnknownHoldDefault   = 30 * time.Second
	SweepIntervalDefault = time.Second
	StrandedAfterDefault = time.Minute
	FinalizeGraceDefault = 30 * time.Second
	EventRetryDefault    = 10 * time.Second
)

// Batches tunes the engine's batch-level work: the hold of requests whose
// batch does not exist yet, and the sweep that expires batches, ends
// requests nobody will bring back, and publishes events left unpublished.
type Batches struct {
	// UnknownHold is how long a request naming a batch that does not exist
	// is held (redelivered) before it ends failed batch_not_found,
	// counted from the message's publication.
	UnknownHold time.Duration `yaml:"unknown_hold"`
	// SweepInterval is how often the sweep's leader sweeps the live
	// batches. Every worker competes for the leader's Redis lock.
	SweepInterval time.Duration `yaml:"sweep_interval"`
	// StrandedAfter is how long after its lease ended an in-flight request
	// whose message is gone is ended failed message_lost (before its
	// batch's deadline; after it, at once).
	StrandedAfter time.Duration `yaml:"stranded_after"`
	// FinalizeGrace is how long a batch whose requests have all ended
	// waits for missing results (of messages lost before any worker read
	// them) before it turns final with results_missing; it never does
	// while REQUESTS still holds a message of it.
	FinalizeGrace time.Duration `yaml:"finalize_grace"`
	// EventRetry is how long a batch event may stay unpublished before the
	// sweep publishes it.
	EventRetry time.Duration `yaml:"event_retry"`
}

// WithDefaults fills unset fields.
func (b Batches) WithDefaults() Batches {
	for _, f := range []struct {
		v   *time.Duration
		def time.Duration
	}{
		{&b.UnknownHold, UnknownHoldDefault}, {&b.SweepInterval, SweepIntervalDefault},
		{&b.StrandedAfter, StrandedAfterDefault}, {&b.FinalizeGrace, FinalizeGraceDefault},
		{&b.EventRetry, EventRetryDefault},
	} {
		if *f.v == 0 {
			*f.v = f.def
		}
	}
	return b
}

// Validate reports the first bad field as a *lifecycle.ConfigError named
// by its key under "batches".
func (b Batches) Validate() error {
	for _, f := range []struct {
		key string
		v   time.Duration
		min time.Duration
	}{
		{"batches.unknown_hold", b.UnknownHold, 0}, {"batches.sweep_interval", b.SweepInterval, 10 * time.Millisecond},
		{"batches.stranded_after", b.StrandedAfter, 0}, {"batches.finalize_grace", b.FinalizeGrace, 0},
		{"batches.event_retry", b.EventRetry, 100 * time.Millisecond},
	} {
		if f.v < f.min || f.v < 0 {
			return lifecycle.ConfigErrorf(f.key, "%s must be at least %s", f.v, f.min)
		}
	}
	return nil
}

// Concurrency bounds in-flight calls per model.
type Concurrency struct {
	// Default is the per-pod limit of a model without a limit of its own
	// (models).
	Default int `yaml:"default"`
	// Models are per-pod limits by model name.
	Models map[string]int `yaml:"models"`
	// Global are optional fleet-wide limits by model name, enforced through
	// Redis slots shared by every pod.
	Global map[string]int `yaml:"global"`
}

// Limit is the per-pod limit for model.
func (c Concurrency) Limit(model string) int {
	if n, ok := c.Models[model]; ok {
		return n
	}
	return c.Default
}

// Validate reports the first bad limit as a *lifecycle.ConfigError named
// by its key under "concurrency" (the section Concurrency always has in a
// config file). Models are checked in name order.
func (c Concurrency) Validate() error {
	if c.Default < 1 {
		return lifecycle.ConfigErrorf("concurrency.default", "must be at least 1, got %d", c.Default)
	}
	for _, l := range []struct {
		key    string
		limits map[string]int
	}{{"concurrency.models", c.Models}, {"concurrency.global", c.Global}} {
		for _, m := range slices.Sorted(maps.Keys(l.limits)) {
			if n := l.limits[m]; n < 1 {
				return lifecycle.ConfigErrorf(fmt.Sprintf("%s[%q]", l.key, m), "must be at least 1, got %d", n)
			}
		}
	}
	return nil
}

// Config tunes the engine. The yaml tags name its keys in a deployment's
// settings (internal/config), where they sit at the top level; untagged
// fields are not settings.
type Config struct {
	// ID names this worker instance: the lease owner in Redis.
	ID string `yaml:"-"`
	// Retry decides retries of failed attempts.
	Retry lifecycle.RetryPolicy `yaml:"retry"`
	// Concurrency bounds in-flight calls per model.
	Concurrency Concurrency `yaml:"concurrency"`
	// HeartbeatInterval: how often in-flight requests send JetStream
	// in-progress and refresh their Redis lease. Keep it well inside both
	// AckWait and the lease TTL (a third of the smaller is the rule).
	HeartbeatInterval time.Duration `yaml:"heartbeat_interval"`
	// ShutdownGrace: how long in-flight calls may run after a stop before
	// they are aborted and handed back.
	ShutdownGrace time.Duration `yaml:"shutdown_grace"`
	// GlobalSlotTTL is the lifetime of a fleet-wide slot between refreshes;
	// default the larger of 6s and three heartbeats, so a killed worker's
	// slots free up about when its leases expire.
	GlobalSlotTTL time.Duration `yaml:"-"`
	// GlobalSlotPoll is how often a request waiting for a fleet-wide slot
	// asks again.
	GlobalSlotPoll time.Duration `yaml:"-"`
	// MarkFlushInterval is the marker's backstop tick: marks are flushed as
	// soon as they are queued (a group commit), and a result's ack waits for
	// the pipeline that carries its mark.
	MarkFlushInterval time.Duration `yaml:"-"`
	// OpTimeout bounds each Redis or NATS call the worker makes.
	OpTimeout time.Duration `yaml:"-"`
	// Batches tunes the unknown-batch hold and the sweep.
	Batches Batches `yaml:"batches"`
	// Escalations are the per-model escalations near the deadline
	// (route at claim, or a racing copy); reloadable.
	Escalations Escalations `yaml:"escalations"`
	// RateLimits are the fleet-wide upstream budgets and the adaptive
	// concurrency limits (pkg/ratelimit); not changed by a reload.
	RateLimits ratelimit.Config `yaml:"rate_limits"`
	// LogOutcomes is how many "request ended" lines per second are logged
	// at info; the others go to debug, so a busy worker does not spend its
	// time writing a line per request. Default 10.
	LogOutcomes int `yaml:"log_outcomes_per_second"`
	// LagInterval is how often the queue lag gauges
	// (salvo_queue_pending_messages, salvo_queue_oldest_pending_age_seconds)
	// are read from the server: two JetStream API calls per model; default
	// 15s (LagIntervalDefault).
	LagInterval time.Duration `yaml:"queue_lag_interval"`
}

// WithDefaults fills unset fields.
func (c Config) WithDefaults() Config {
	if c.ID == "" {
		host, _ := os.Hostname()
		c.ID = host + "-" + strconv.Itoa(os.Getpid()) + "-" + strconv.FormatInt(time.Now().UnixNano()%1_000_000, 36)
	}
	c.Retry = c.Retry.WithDefaults()
	if c.Concurrency.Default == 0 {
		c.Concurrency.Default = ConcurrencyDefault
	}
	if c.HeartbeatInterval == 0 {
		c.HeartbeatInterval = HeartbeatIntervalDefault
	}
	if c.ShutdownGrace == 0 {
		c.ShutdownGrace = ShutdownGraceDefault
	}
	if c.GlobalSlotTTL == 0 {
		c.GlobalSlotTTL = max(GlobalSlotTTLDefault, 3*c.HeartbeatInterval)
	}
	if c.GlobalSlotPoll == 0 {
		c.GlobalSlotPoll = GlobalSlotPollDefault
	}
	if c.MarkFlushInterval == 0 {
		c.MarkFlushInterval = MarkFlushIntervalDefault
	}
	if c.OpTimeout == 0 {
		c.OpTimeout = OpTimeoutDefault
	}
	c.Batches = c.Batches.WithDefaults()
	c.Escalations = c.Escalations.WithDefaults()
	c.RateLimits = c.RateLimits.WithDefaults()
	if c.LogOutcomes == 0 {
		c.LogOutcomes = LogOutcomesDefault
	}
	if c.LagInterval == 0 {
		c.LagInterval = LagIntervalDefault
	}
	return c
}

// Validate reports the first bad field as a *lifecycle.ConfigError named by
// its key.
func (c Config) Validate() error {
	if err := c.Retry.Validate(); err != nil {
		return err
	}
	if err := c.Concurrency.Validate(); err != nil {
		return err
	}
	if err := c.Batches.Validate(); err != nil {
		return err
	}
	if err := c.Escalations.Validate(); err != nil {
		return err
	}
	if err := c.RateLimits.Validate(); err != nil {
		return err
	}
	switch {
	case c.HeartbeatInterval <= 0:
		return lifecycle.ConfigErrorf("heartbeat_interval", "must be positive, got %s", c.HeartbeatInterval)
	case c.ShutdownGrace < 0:
		return lifecycle.ConfigErrorf("shutdown_grace", "must not be negative, got %s", c.ShutdownGrace)
	case c.LagInterval < time.Second:
		return lifecycle.ConfigErrorf("queue_lag_interval", "must be at least 1s, got %s", c.LagInterval)
	case c.LogOutcomes < 1:
		return lifecycle.ConfigErrorf("log_outcomes_per_second", "must be at least 1, got %d", c.LogOutcomes)
	case c.GlobalSlotTTL <= c.HeartbeatInterval:
		return lifecycle.ConfigErrorf("global_slot_ttl", "%s must exceed heartbeat_interval %s", c.GlobalSlotTTL, c.HeartbeatInterval)
	}
	return nil
}
