package natsconn

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/salvo-run/salvo/internal/connauth"
	"github.com/salvo-run/salvo/pkg/lifecycle"
)

// Config is how to reach and authenticate to NATS. Keys in errors are the
// yaml tags ("creds", "tls.ca"); "url" is URL. The field comments are the
// settings' descriptions in docs/CONFIG.md: each speaks of its own key.
type Config struct {
	// URL is one server URL or several, comma-separated. The worker sets it
	// from nats_url.
	URL string `yaml:"-"`
	// Creds is a user credentials file (a user JWT and its nkey seed, as
	// `nsc` writes it), for servers in operator (JWT) mode.
	Creds string `yaml:"creds"`
	// NKey is an nkey seed file, for a server that lists the user's public
	// nkey.
	NKey string `yaml:"nkey"`
	// User is the user name, for a server with users and passwords; it
	// needs a password (`nats.password` or `nats.password_file`).
	User string `yaml:"user"`
	// Password is the user's password; never logged. Prefer
	// `nats.password_file` or the SALVO_NATS_PASSWORD variable to a
	// password in the file.
	Password lifecycle.Secret `yaml:"password"`
	// PasswordFile names a file holding the user's password (a mounted
	// secret), trailing newline trimmed; it excludes `nats.password`.
	PasswordFile string `yaml:"password_file"`
	// Token is the token, for a server with a token; never logged.
	Token lifecycle.Secret `yaml:"token"`
	// TokenFile names a file holding the token (a mounted secret),
	// trailing newline trimmed; it excludes `nats.token`.
	TokenFile string `yaml:"token_file"`
	// TLS turns TLS on and names the CA and client certificate.
	TLS connauth.TLS `yaml:"tls"`
}

// Validate checks the settings without reading any file: a URL, at most
// one way to authenticate, a user and password together, a TLS client
// certificate with its key.
func (c Config) Validate() error {
	if err := validateURLs(c.URL); err != nil {
		return err
	}
	switch {
	case c.Password != "" && c.PasswordFile != "":
		return lifecycle.ConfigErrorf("password_file", "set password or password_file, not both")
	case c.Token != "" && c.TokenFile != "":
		return lifecycle.ConfigErrorf("token_file", "set token or token_file, not both")
	case c.User != "" && c.Password == "" && c.PasswordFile == "":
		return lifecycle.ConfigErrorf("user", "needs password or password_file")
	case c.User == "" && (c.Password != "" || c.PasswordFile != ""):
		return lifecycle.ConfigErrorf("password", "needs user")
	}
	if ways := c.authKeys(); len(ways) > 1 {
		return lifecycle.ConfigErrorf(ways[1], "and %s are two ways to authenticate: set one of creds, nkey, user or token", ways[0])
	}
	if err := c.TLS.Validate(); err != nil {
		return inTLS(err)
	}
	return nil
}

// validateURLs checks each comma-separated server URL as nats.go will
// parse it: a URL without "://" is a host:port that gets the nats://
// scheme. The error names "url" and never the value: a URL that does not
// parse may hold a password, and url.Parse's error quotes it whole.
func validateURLs(servers string) error {
	parts := serverURLs(servers)
	if len(parts) == 0 {
		return lifecycle.ConfigErrorf("url", "is required")
	}
	for i, p := range parts {
		if _, err := url.Parse(withScheme(p)); err != nil {
			which := ""
			if len(parts) > 1 {
				which = fmt.Sprintf(" (server %d of %d)", i+1, len(parts))
			}
			return lifecycle.ConfigErrorf("url", "not a valid URL%s (value not shown: it may hold a password)", which)
		}
	}
	return nil
}

// serverURLs splits a comma-separated server list as nats.go does:
// trimmed, empty entries dropped.
func serverURLs(servers string) []string {
	var out []string
	for _, p := range strings.Split(servers, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// withScheme is p as nats.go parses it: host:port gets nats://.
func withScheme(p string) string {
	if strings.Contains(p, "://") {
		return p
	}
	return "nats://" + p
}

// authKeys are the keys of the ways to authenticate that are set.
func (c Config) authKeys() []string {
	var ways []string
	if c.Creds != "" {
		ways = append(ways, "creds")
	}
	if c.NKey != "" {
		ways = append(ways, "nkey")
	}
	if c.User != "" {
		ways = append(ways, "user")
	}
	if c.Token != "" || c.TokenFile != "" {
		ways = append(ways, "token")
	}
	return ways
}

// Options validates c, reads its files and returns the client options
// that authenticate and secure the connection. A file that cannot be read
// or parsed is a *lifecycle.ConfigError naming its key.
func (c Config) Options() ([]nats.Option, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	var opts []nats.Option
	switch {
	case c.Creds != "":
		if err := checkCreds(c.Creds); err != nil {
			return nil, lifecycle.ConfigErrorf("creds", "%s: %w", c.Creds, err)
		}
		opts = append(opts, nats.UserCredentials(c.Creds))
	case c.NKey != "":
		opt, err := nats.NkeyOptionFromSeed(c.NKey)
		if err != nil {
			return nil, lifecycle.ConfigErrorf("nkey", "%s: %w", c.NKey, stripNATS(err))
		}
		opts = append(opts, opt)
	case c.User != "":
		pw, err := connauth.Secret(c.Password, c.PasswordFile, "password", "password_file")
		if err != nil {
			return nil, err
		}
		opts = append(opts, nats.UserInfo(c.User, pw.Reveal()))
	case c.Token != "" || c.TokenFile != "":
		tok, err := connauth.Secret(c.Token, c.TokenFile, "token", "token_file")
		if err != nil {
			return nil, err
		}
		opts = append(opts, nats.Token(tok.Reveal()))
	}
	tc, err := c.TLS.Config()
	if err != nil {
		return nil, inTLS(err)
	}
	if tc != nil {
		opts = append(opts, nats.Secure(tc))
	}
	return opts, nil
}

// checkCreds reads a credentials file as the client will at connect time
// and checks that it holds a user JWT and a seed, so a wrong path or file
// fails before the first connection, naming the setting.
func checkCreds(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return stripNATS(err)
	}
	if _, err := nkeys.ParseDecoratedJWT(data); err != nil {
		return errors.New("holds no user JWT (expected a credentials file as nsc writes it)")
	}
	kp, err := nkeys.ParseDecoratedUserNKey(data)
	if err != nil {
		return errors.New("holds no user nkey seed (expected a credentials file as nsc writes it)")
	}
	kp.Wipe()
	return nil
}

// stripNATS drops the client's "nats: " prefix from a file error.
func stripNATS(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe
	}
	return err
}

// inTLS puts "tls." in front of a TLS error's key.
func inTLS(err error) error {
	if ce, ok := lifecycle.AsConfigError(err); ok {
		return &lifecycle.ConfigError{Key: "tls." + ce.Key, Err: ce.Err}
	}
	return err
}
