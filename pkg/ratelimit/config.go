package ratelimit

import (
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/salvo-run/salvo/pkg/lifecycle"
)

// Defaults.
const (
	DefaultOutputTokensDefault = 256
	FallbackShareDefault       = 0.25
	MaxWaitDefault             = 30 * time.Second
	// BudgetTTLDefault is how long a budget's Redis hash outlives its last
	// admission (learned limits included).
	BudgetTTLDefault = time.Hour

	AdaptiveInitialDefault   = 8
	AdaptiveMinDefault       = 1
	AdaptiveToleranceDefault = 1.25
	AdaptiveBackoffDefault   = 0.9
)

// Budget are the configured per-minute limits of one model; 0 is "none
// configured" (a limit learned from the headers may still apply). When
// both are known the lower wins.
type Budget struct {
	// RequestsPerMinute bounds the calls started per minute.
	RequestsPerMinute int64 `yaml:"requests_per_minute"`
	// TokensPerMinute bounds input plus output tokens per minute.
	TokensPerMinute int64 `yaml:"tokens_per_minute"`
	// InputTokensPerMinute bounds the input (prompt) tokens per minute.
	InputTokensPerMinute int64 `yaml:"input_tokens_per_minute"`
	// OutputTokensPerMinute bounds the output (completion) tokens per
	// minute.
	OutputTokensPerMinute int64 `yaml:"output_tokens_per_minute"`
}

// Amounts are the limits by Dim.
func (b Budget) Amounts() Amounts {
	return Amounts{b.RequestsPerMinute, b.TokensPerMinute, b.InputTokensPerMinute, b.OutputTokensPerMinute}
}

// Adaptive tunes the adaptive concurrency limit of key × model pairs.
type Adaptive struct {
	// Enabled turns the controller on for every model.
	Enabled bool `yaml:"enabled"`
	// Initial is the starting limit (capped by the per-pod limit).
	Initial int `yaml:"initial"`
	// Min is the floor of the limit.
	Min int `yaml:"min"`
	// LatencyTolerance: a window whose mean latency exceeds this many
	// times the latency floor decreases the limit.
	LatencyTolerance float64 `yaml:"latency_tolerance"`
	// Backoff multiplies the limit on a decrease; above 0 and below 1.
	Backoff float64 `yaml:"backoff"`
}

// Config tunes the limiter. It sits under "rate_limits" in a deployment's
// settings.
type Config struct {
	// Disabled turns the limiter off: no budgets, no holds, no adaptive
	// limit (for comparisons; calls then meet 429s one by one).
	Disabled bool `yaml:"disabled"`
	// Budgets are the configured limits by model name. Which calls share
	// one budget is the route's business (httpclient.Route.Budget, else
	// the route's API key).
	Budgets map[string]Budget `yaml:"budgets"`
	// IgnoreHeaders stops learning limits from response headers (holds
	// from retry-after still apply).
	IgnoreHeaders bool `yaml:"ignore_headers"`
	// DefaultOutputTokens is the output estimate of a call whose body
	// names no max_tokens.
	DefaultOutputTokens int64 `yaml:"default_output_tokens"`
	// FallbackShare is the fraction of a budget one worker spends on its
	// own while Redis is unreachable.
	FallbackShare float64 `yaml:"fallback_share"`
	// MaxWait bounds one wait for budget; a call whose reservation is
	// further out asks again after it (always within its deadline).
	MaxWait time.Duration `yaml:"max_wait"`
	// TTL is how long a budget's shared state outlives its last use.
	TTL time.Duration `yaml:"-"`
	// Adaptive tunes adaptive concurrency.
	Adaptive Adaptive `yaml:"adaptive"`
}

// WithDefaults fills unset fields.
func (c Config) WithDefaults() Config {
	if c.DefaultOutputTokens == 0 {
		c.DefaultOutputTokens = DefaultOutputTokensDefault
	}
	if c.FallbackShare == 0 {
		c.FallbackShare = FallbackShareDefault
	}
	if c.MaxWait == 0 {
		c.MaxWait = MaxWaitDefault
	}
	if c.TTL == 0 {
		c.TTL = BudgetTTLDefault
	}
	a := &c.Adaptive
	if a.Initial == 0 {
		a.Initial = AdaptiveInitialDefault
	}
	if a.Min == 0 {
		a.Min = AdaptiveMinDefault
	}
	if a.LatencyTolerance == 0 {
		a.LatencyTolerance = AdaptiveToleranceDefault
	}
	if a.Backoff == 0 {
		a.Backoff = AdaptiveBackoffDefault
	}
	return c
}

// Validate reports the first bad field as a *lifecycle.ConfigError named by
// its key under "rate_limits". Budgets are checked in model order.
func (c Config) Validate() error {
	for _, m := range slices.Sorted(maps.Keys(c.Budgets)) {
		b := c.Budgets[m]
		for _, f := range []struct {
			name string
			v    int64
		}{
			{"requests_per_minute", b.RequestsPerMinute}, {"tokens_per_minute", b.TokensPerMinute},
			{"input_tokens_per_minute", b.InputTokensPerMinute}, {"output_tokens_per_minute", b.OutputTokensPerMinute},
		} {
			if f.v < 0 {
				return lifecycle.ConfigErrorf(fmt.Sprintf("rate_limits.budgets[%q].%s", m, f.name), "must not be negative, got %d", f.v)
			}
		}
	}
	a := c.Adaptive
	switch {
	case c.DefaultOutputTokens < 0:
		return lifecycle.ConfigErrorf("rate_limits.default_output_tokens", "must not be negative, got %d", c.DefaultOutputTokens)
	case c.FallbackShare <= 0 || c.FallbackShare > 1:
		return lifecycle.ConfigErrorf("rate_limits.fallback_share", "must be in (0, 1], got %g", c.FallbackShare)
	case c.MaxWait < 10*time.Millisecond:
		return lifecycle.ConfigErrorf("rate_limits.max_wait", "must be at least 10ms, got %s", c.MaxWait)
	case a.Min < 1:
		return lifecycle.ConfigErrorf("rate_limits.adaptive.min", "must be at least 1, got %d", a.Min)
	case a.Initial < a.Min:
		return lifecycle.ConfigErrorf("rate_limits.adaptive.initial", "%d must be at least rate_limits.adaptive.min %d", a.Initial, a.Min)
	case a.LatencyTolerance <= 1:
		return lifecycle.ConfigErrorf("rate_limits.adaptive.latency_tolerance", "must exceed 1, got %g", a.LatencyTolerance)
	case a.Backoff <= 0 || a.Backoff >= 1:
		return lifecycle.ConfigErrorf("rate_limits.adaptive.backoff", "must be in (0, 1), got %g", a.Backoff)
	}
	return nil
}
