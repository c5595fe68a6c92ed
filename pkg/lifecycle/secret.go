package lifecycle

import (
	"fmt"
	"io"
)

// redacted is what a Secret prints as, wherever it is printed.
const redacted = "[redacted]"

// Secret is a credential: an upstream API key, a NATS or Redis password.
// It prints, formats and marshals (JSON, YAML, text, zerolog) as
// "[redacted]"; only Reveal returns the value, and only the code that hands
// it to a client (the Authorization header, a connection's AUTH) calls it.
type Secret string

// Reveal returns the secret's value. Never log or wrap its result.
func (s Secret) Reveal() string { return string(s) }

// IsZero reports whether no secret is set.
func (s Secret) IsZero() bool { return s == "" }

// String implements fmt.Stringer.
func (s Secret) String() string { return redacted }

// GoString implements fmt.GoStringer (%#v).
func (s Secret) GoString() string { return `lifecycle.Secret("` + redacted + `")` }

// Format implements fmt.Formatter so every verb (%s %v %q %x %d …) prints
// the redaction, never the value.
func (s Secret) Format(f fmt.State, verb rune) {
	if verb == 'q' {
		_, _ = io.WriteString(f, `"`+redacted+`"`)
		return
	}
	_, _ = io.WriteString(f, redacted)
}

// MarshalJSON implements json.Marshaler (zerolog's Interface uses it too).
func (s Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + redacted + `"`), nil }

// MarshalText implements encoding.TextMarshaler.
func (s Secret) MarshalText() ([]byte, error) { return []byte(redacted), nil }

// MarshalYAML implements yaml.Marshaler.
func (s Secret) MarshalYAML() (any, error) { return redacted, nil }
