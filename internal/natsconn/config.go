package natsconn

import (
	"errors"
	"os"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/salvo-run/salvo/internal/connauth"
	"github.com/salvo-run/salvo/pkg/lifecycle"
)

// Config is how to reach and authenticate to NATS. Keys in errors are the
// yaml tags ("creds", "tls.ca"); "url" is URL.
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
	// User with Password (or the content of PasswordFile).
	User         string           `yaml:"user"`
	Password     lifecycle.Secret `yaml:"password"`
	PasswordFile string           `yaml:"password_file"`
	// Token (or the content of TokenFile), for a server with a token.
	Token     lifecycle.Secret `yaml:"token"`
	TokenFile string           `yaml:"token_file"`
	// TLS turns TLS on and names the CA and client certificate.
	TLS connauth.TLS `yaml:"tls"`
}

// Validate checks the settings without reading any file: a URL, at most
// one way to authenticate, a user and password together, a TLS client
// certificate with its key.
func (c Config) Validate() error {
	if strings.TrimSpace(c.URL) == "" {
		return lifecycle.ConfigErrorf("url", "is required")
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
