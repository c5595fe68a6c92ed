package api

import (
	"regexp"
	"strings"
	"time"

	"github.com/salvo-run/salvo/pkg/lifecycle"
)

// Service defaults.
const (
	// VersionDefault is the version a binary without one reports.
	VersionDefault = "dev"
	// MaxBodyDefault bounds a request body: 64 KiB.
	MaxBodyDefault = 64 << 10
	// TimeoutDefault bounds the store and NATS calls of one API request.
	TimeoutDefault = 10 * time.Second
)

// ServiceName is the micro service name every salvo process registers.
const ServiceName = "salvo"

// Config tunes the service. Zero fields take the defaults (WithDefaults).
type Config struct {
	// Prefix is the deployment prefix: endpoints live under <Prefix>.api
	// (lifecycle.PrefixDefault when empty).
	Prefix string
	// Version is the binary's version (VersionDefault when empty). The
	// micro protocol wants semantic versions; a version that is not one
	// is reported as 0.0.0-<version> (see MicroVersion), the version as
	// given in the service metadata key "salvo_version".
	Version string
	// MaxBody is the largest request body accepted, in bytes
	// (MaxBodyDefault when 0).
	MaxBody int
	// Timeout bounds the store and NATS calls one API request makes
	// (TimeoutDefault when 0). A call that runs out answers unavailable.
	Timeout time.Duration
}

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	if c.Prefix == "" {
		c.Prefix = lifecycle.PrefixDefault
	}
	if c.Version == "" {
		c.Version = VersionDefault
	}
	if c.MaxBody == 0 {
		c.MaxBody = MaxBodyDefault
	}
	if c.Timeout == 0 {
		c.Timeout = TimeoutDefault
	}
	return c
}

// Validate reports the first bad field as a *lifecycle.ConfigError.
func (c Config) Validate() error {
	if err := lifecycle.CheckPrefix(c.Prefix); err != nil {
		return lifecycle.ConfigErrorf("prefix", "%w", err)
	}
	if c.MaxBody < 1 {
		return lifecycle.ConfigErrorf("max_body", "must be at least 1, got %d", c.MaxBody)
	}
	if c.Timeout <= 0 {
		return lifecycle.ConfigErrorf("timeout", "must be positive, got %s", c.Timeout)
	}
	return nil
}

// semVer is the check the micro package applies to a service version.
var semVer = regexp.MustCompile(`^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$`)

// MicroVersion is the version the micro service reports for a binary
// version: v itself (without a leading "v") when it is a semantic version,
// else 0.0.0-<v> with every character outside [0-9A-Za-z-] turned into
// '-' ("dev" → "0.0.0-dev", "1.2" → "0.0.0-1-2").
func MicroVersion(v string) string {
	if s := strings.TrimPrefix(v, "v"); semVer.MatchString(s) {
		return s
	}
	clean := strings.Map(func(r rune) rune {
		if r == '-' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' {
			return r
		}
		return '-'
	}, v)
	if v := "0.0.0-" + clean; clean != "" && semVer.MatchString(v) {
		return v
	}
	// Empty, or digits only with a leading zero ("0123").
	return "0.0.0-" + VersionDefault + "-" + clean
}
