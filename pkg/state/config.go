package state

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/rs/zerolog"
)

// Config defaults.
const (
	PrefixDefault      = "salvo"
	LeaseTTLDefault    = 30 * time.Second
	RetentionDefault   = 7 * 24 * time.Hour
	MaxReclaimsDefault = 5
)

// Config configures a Store. The zero value plus WithDefaults is valid.
type Config struct {
	// Prefix starts every key; default "salvo". It must not contain '{' or
	// '}' (they would break the batch hash tag).
	Prefix string
	// LeaseTTL is how long a claim or refresh holds a request; default 30s.
	LeaseTTL time.Duration
	// Retention is how long terminal request records and finalized batches
	// are kept; default 7 days.
	Retention time.Duration
	// MaxReclaims bounds reclaims after lease expiry: a request reclaimed
	// more often ends failed with lifecycle.CodeMaxDeliveries (crash-loop
	// guard); default 5.
	MaxReclaims int
	// Clock is the time source passed into every script; default time.Now.
	Clock func() time.Time
	// Logger receives the store's rare diagnostic events; default disabled.
	Logger *zerolog.Logger
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

// Validate reports the first invalid field by name.
func (c Config) Validate() error {
	switch {
	case c.Prefix == "":
		return fmt.Errorf("%w: Prefix must not be empty", ErrInvalidConfig)
	case strings.ContainsAny(c.Prefix, "{}"):
		return fmt.Errorf("%w: Prefix %q must not contain '{' or '}'", ErrInvalidConfig, c.Prefix)
	case c.LeaseTTL < time.Millisecond:
		return fmt.Errorf("%w: LeaseTTL %s must be at least 1ms", ErrInvalidConfig, c.LeaseTTL)
	case c.Retention < time.Millisecond:
		return fmt.Errorf("%w: Retention %s must be at least 1ms", ErrInvalidConfig, c.Retention)
	case c.MaxReclaims < 0:
		return fmt.Errorf("%w: MaxReclaims %d must not be negative", ErrInvalidConfig, c.MaxReclaims)
	case c.Clock == nil:
		return fmt.Errorf("%w: Clock must not be nil", ErrInvalidConfig)
	}
	return nil
}
