package worker

import (
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/salvo-run/salvo/pkg/lifecycle"
)

// Engine defaults.
const (
	ConcurrencyDefault       = 64
	HeartbeatIntervalDefault = 10 * time.Second
	ShutdownGraceDefault     = 30 * time.Second
	GlobalSlotTTLDefault     = 30 * time.Second
	GlobalSlotPollDefault    = 200 * time.Millisecond
	MarkFlushIntervalDefault = 20 * time.Millisecond
	OpTimeoutDefault         = 10 * time.Second
)

// Concurrency bounds in-flight calls per model.
type Concurrency struct {
	// Default is the per-pod limit of a model not listed in Models.
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

// Validate names the first bad field.
func (c Concurrency) Validate() error {
	if c.Default < 1 {
		return fmt.Errorf("concurrency.default: must be at least 1, got %d", c.Default)
	}
	for m, n := range c.Models {
		if n < 1 {
			return fmt.Errorf("concurrency.models[%q]: must be at least 1, got %d", m, n)
		}
	}
	for m, n := range c.Global {
		if n < 1 {
			return fmt.Errorf("concurrency.global[%q]: must be at least 1, got %d", m, n)
		}
	}
	return nil
}

// Config tunes the engine. Process-level settings (URLs, routes, streams)
// live in Settings.
type Config struct {
	// ID names this worker instance: the lease owner in Redis.
	ID string
	// Retry decides retries of failed attempts.
	Retry lifecycle.RetryPolicy
	// Concurrency bounds in-flight calls per model.
	Concurrency Concurrency
	// HeartbeatInterval: how often in-flight requests send JetStream
	// in-progress and refresh their Redis lease. Keep it well inside both
	// AckWait and the lease TTL (a third of the smaller is the rule).
	HeartbeatInterval time.Duration
	// ShutdownGrace: how long in-flight calls may run after a stop before
	// they are aborted and handed back.
	ShutdownGrace time.Duration
	// GlobalSlotTTL is the lifetime of a fleet-wide slot between refreshes.
	GlobalSlotTTL time.Duration
	// GlobalSlotPoll is how often a request waiting for a fleet-wide slot
	// asks again.
	GlobalSlotPoll time.Duration
	// MarkFlushInterval groups "result published" marks into one pipeline.
	MarkFlushInterval time.Duration
	// OpTimeout bounds each Redis or NATS call the worker makes.
	OpTimeout time.Duration
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
	return c
}

// Validate names the first bad field.
func (c Config) Validate() error {
	if err := c.Retry.Validate(); err != nil {
		return err
	}
	if err := c.Concurrency.Validate(); err != nil {
		return err
	}
	switch {
	case c.HeartbeatInterval <= 0:
		return fmt.Errorf("heartbeat_interval: must be positive, got %s", c.HeartbeatInterval)
	case c.ShutdownGrace < 0:
		return fmt.Errorf("shutdown_grace: must not be negative, got %s", c.ShutdownGrace)
	case c.GlobalSlotTTL <= c.HeartbeatInterval:
		return fmt.Errorf("global_slot_ttl: %s must exceed heartbeat_interval %s", c.GlobalSlotTTL, c.HeartbeatInterval)
	}
	return nil
}
