package natsconn

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go"

	"github.com/salvo-run/salvo/internal/connauth"
)

// Connect opens a connection with c's options followed by extra (name,
// timeouts, handlers). A refused connection is a *ConnectError; invalid
// settings or unreadable files a *lifecycle.ConfigError.
func (c Config) Connect(extra ...nats.Option) (*nats.Conn, error) {
	opts, err := c.Options()
	if err != nil {
		return nil, err
	}
	nc, err := nats.Connect(c.URL, append(opts, extra...)...)
	if err != nil {
		return nil, &ConnectError{URL: RedactURLs(c.URL), Keys: c.blame(err), Err: scrub(err, c.URL)}
	}
	return nc, nil
}

// ConnectError is a connection NATS refused or never answered: the
// server, the settings that decide it (keys of Config, "url" for the
// URL) and the client's error. It holds no secret.
type ConnectError struct {
	// URL is the server URLs without passwords.
	URL string
	// Keys are the settings to check, most likely first.
	Keys []string
	// Err is the client's error, its text without the configured URLs
	// (errors.Is(err, nats.ErrAuthorization) holds through it).
	Err error
}

func (e *ConnectError) Error() string { return fmt.Sprintf("connect to %s: %v", e.URL, e.Err) }

// Unwrap returns the client's error.
func (e *ConnectError) Unwrap() error { return e.Err }

// Hint is "(check A; B)" with each key named by name, how the program's
// user spells the setting, and what a TLS problem means:
// "(check --tlsca (NATS_CA): the server's certificate is not signed by
// the trusted CA)".
func (e *ConnectError) Hint(name func(key string) string) string {
	names := make([]string, len(e.Keys))
	for i, k := range e.Keys {
		names[i] = name(k)
	}
	hint := "(check " + strings.Join(names, "; ")
	if field, ok := strings.CutPrefix(e.Keys[0], "tls."); ok && len(e.Keys) == 1 {
		hint += ": " + connauth.Describe(field)
	}
	return hint + ")"
}

// blame is the settings a connect error points at.
func (c Config) blame(err error) []string {
	if field := connauth.TLSBlame(err); field != "" {
		return []string{"tls." + field}
	}
	switch {
	case errors.Is(err, nats.ErrTLS):
		// nats.go's word for a server that closed the connection right
		// after the handshake: it refused the client certificate.
		return []string{"tls.cert"}
	case errors.Is(err, nats.ErrAuthorization), errors.Is(err, nats.ErrAuthExpired),
		errors.Is(err, nats.ErrAuthRevoked), errors.Is(err, nats.ErrAccountAuthExpired),
		errors.Is(err, nats.ErrNkeysNotSupported):
		if ways := c.authKeys(); len(ways) > 0 {
			if ways[0] == "user" {
				return []string{"user", "password"}
			}
			return ways
		}
		return []string{"creds", "nkey", "user", "token"} // the server wants one
	case errors.Is(err, nats.ErrSecureConnRequired):
		return []string{"tls.ca", "url"} // TLS on: any tls key, or tls://
	case errors.Is(err, nats.ErrSecureConnWanted):
		return []string{"tls.enabled", "url"}
	}
	return []string{"url"}
}

// RedactURLs hides the passwords and tokens of a comma-separated URL
// list: nats://user:pw@h keeps the user, nats://token@h (a user without a
// password is a token to NATS) keeps neither.
func RedactURLs(servers string) string {
	parts := strings.Split(servers, ",")
	for i, p := range parts {
		parts[i] = redactURL(strings.TrimSpace(p))
	}
	return strings.Join(parts, ",")
}

// redactURL redacts one server URL; a host:port without scheme (which
// nats.go takes as nats://) stays without one.
func redactURL(p string) string {
	full := withScheme(p)
	u, err := url.Parse(full)
	switch {
	case err != nil && strings.Contains(p, "@"):
		return "(a URL that does not parse, not shown: it may hold a password)"
	case err != nil || u.User == nil:
		return p
	}
	if _, ok := u.User.Password(); ok {
		full = u.Redacted()
	} else {
		u.User = url.User("xxxxx")
		full = u.String()
	}
	if full != p && !strings.Contains(p, "://") {
		return strings.TrimPrefix(full, "nats://")
	}
	return full
}

// scrubbedError is a client error whose text had a configured URL in it,
// with each URL redacted; errors.Is and errors.As see the client's error.
type scrubbedError struct {
	msg string
	err error
}

func (e *scrubbedError) Error() string { return e.msg }
func (e *scrubbedError) Unwrap() error { return e.err }

// scrub replaces each configured server URL in err's text by its redacted
// form. Validate has refused the URLs that url.Parse rejects — whose
// error quotes the URL whole — so this is the second line: no client
// error text may carry a password from the URL.
func scrub(err error, servers string) error {
	msg := err.Error()
	for _, p := range serverURLs(servers) {
		quoted := strconv.Quote(p)
		for _, form := range []string{quoted[1 : len(quoted)-1], p} {
			msg = strings.ReplaceAll(msg, form, redactURL(p))
		}
	}
	if msg == err.Error() {
		return err
	}
	return &scrubbedError{msg: msg, err: err}
}
