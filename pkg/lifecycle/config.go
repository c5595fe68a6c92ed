package lifecycle

import (
	"errors"
	"fmt"
)

// PrefixDefault is the default namespace of a deployment: the first token of
// every subject, the stream name prefix (upper-cased) and the start of every
// Redis key.
const PrefixDefault = "salvo"

// PrefixMaxLen bounds a prefix: it is part of every stream, consumer and key
// name.
const PrefixMaxLen = 32

// CheckPrefix is the one rule for a deployment prefix, shared by the queue,
// the store and the process settings: 1 to PrefixMaxLen ASCII letters, digits
// or '-'. Such a prefix is one subject token as it stands, a valid stream
// name once upper-cased, and cannot break a Redis hash tag.
func CheckPrefix(p string) error {
	if p == "" || len(p) > PrefixMaxLen {
		return fmt.Errorf("%q must be 1-%d letters, digits or '-'", p, PrefixMaxLen)
	}
	for i := 0; i < len(p); i++ {
		if !plainTokenByte(p[i]) {
			return fmt.Errorf("%q must be 1-%d letters, digits or '-'", p, PrefixMaxLen)
		}
	}
	return nil
}

// ConfigError is an invalid configuration value. Key is the setting as a
// config file spells it, relative to the struct that was validated:
// "ack_wait", `routes["gpt-4o"].base_url`, "retry.jitter". Whoever nests
// that struct under a section of a bigger file adds the section in front.
// (FieldError is its counterpart for the fields of a wire message.)
type ConfigError struct {
	Key string
	Err error
}

// ConfigErrorf returns a *ConfigError for key; format and args describe the
// problem (%w works).
func ConfigErrorf(key, format string, args ...any) *ConfigError {
	return &ConfigError{Key: key, Err: fmt.Errorf(format, args...)}
}

func (e *ConfigError) Error() string { return e.Key + ": " + e.Err.Error() }

// Unwrap returns the problem.
func (e *ConfigError) Unwrap() error { return e.Err }

// AsConfigError returns the *ConfigError in err's chain, if any.
func AsConfigError(err error) (*ConfigError, bool) {
	var ce *ConfigError
	ok := errors.As(err, &ce)
	return ce, ok
}
