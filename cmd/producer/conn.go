package main

import (
	"net/url"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/spf13/pflag"

	"github.com/salvo-run/salvo/pkg/lifecycle"
)

// Connection defaults.
const (
	serverDefault         = nats.DefaultURL
	connectTimeoutDefault = 2 * time.Second
	callTimeoutDefault    = 10 * time.Second
)

// connFlags are the connection flags, named like the nats CLI's, each
// with its environment variable. A flag given on the command line wins
// over its variable; the variable over the default.
type connFlags struct {
	server, creds, nkey, user, password string
	tlsCert, tlsKey, tlsCA              string
	prefix                              string
	connectTimeout, timeout             time.Duration

	flags *pflag.FlagSet
}

// connEnv maps a flag to its environment variable.
var connEnv = map[string]string{
	"server":   "NATS_URL",
	"creds":    "NATS_CREDS",
	"nkey":     "NATS_NKEY",
	"user":     "NATS_USER",
	"password": "NATS_PASSWORD",
	"tlscert":  "NATS_CERT",
	"tlskey":   "NATS_KEY",
	"tlsca":    "NATS_CA",
	"prefix":   "SALVO_PREFIX",
}

func (c *connFlags) register(fs *pflag.FlagSet) {
	c.flags = fs
	fs.StringVarP(&c.server, "server", "s", serverDefault, "NATS server URLs, comma-separated (env NATS_URL)")
	fs.StringVar(&c.creds, "creds", "", "NATS user credentials file (env NATS_CREDS)")
	fs.StringVar(&c.nkey, "nkey", "", "NATS nkey seed file (env NATS_NKEY)")
	fs.StringVar(&c.user, "user", "", "NATS user name, or a token when no --password is given (env NATS_USER)")
	fs.StringVar(&c.password, "password", "", "NATS password (env NATS_PASSWORD)")
	fs.StringVar(&c.tlsCert, "tlscert", "", "TLS client certificate file (env NATS_CERT)")
	fs.StringVar(&c.tlsKey, "tlskey", "", "TLS client private key file (env NATS_KEY)")
	fs.StringVar(&c.tlsCA, "tlsca", "", "TLS certificate authority file to trust (env NATS_CA)")
	fs.StringVar(&c.prefix, "prefix", lifecycle.PrefixDefault, "salvo deployment prefix of the subjects (env SALVO_PREFIX)")
	fs.DurationVar(&c.connectTimeout, "connect-timeout", connectTimeoutDefault, "give up connecting to NATS after this long")
	fs.DurationVar(&c.timeout, "timeout", callTimeoutDefault, "give up waiting for one batch API reply after this long")
}

// resolve fills the flags not given on the command line from getenv and
// checks them.
func (c *connFlags) resolve(getenv func(string) string) error {
	targets := map[string]*string{
		"server": &c.server, "creds": &c.creds, "nkey": &c.nkey, "user": &c.user, "password": &c.password,
		"tlscert": &c.tlsCert, "tlskey": &c.tlsKey, "tlsca": &c.tlsCA, "prefix": &c.prefix,
	}
	for name, env := range connEnv {
		if c.flags.Changed(name) {
			continue
		}
		if v := strings.TrimSpace(getenv(env)); v != "" {
			*targets[name] = v
		}
	}
	switch {
	case strings.TrimSpace(c.server) == "":
		return usagef("--server (NATS_URL) is empty")
	case (c.tlsCert == "") != (c.tlsKey == ""):
		return usagef("--tlscert and --tlskey go together (NATS_CERT, NATS_KEY)")
	case c.connectTimeout <= 0:
		return usagef("--connect-timeout %s must be positive", c.connectTimeout)
	case c.timeout <= 0:
		return usagef("--timeout %s must be positive", c.timeout)
	}
	if err := lifecycle.CheckPrefix(c.prefix); err != nil {
		return usagef("--prefix (SALVO_PREFIX): %w", err)
	}
	return nil
}

// connect opens one connection, tried once within the connect timeout.
// Once connected it reconnects as nats.go does by default, so a watch
// rides out a server restart.
func (c *connFlags) connect() (*nats.Conn, error) {
	opts := []nats.Option{
		nats.Name("salvo-producer"),
		nats.Timeout(c.connectTimeout),
		nats.RetryOnFailedConnect(false),
	}
	if c.creds != "" {
		opts = append(opts, nats.UserCredentials(c.creds))
	}
	if c.nkey != "" {
		opt, err := nats.NkeyOptionFromSeed(c.nkey)
		if err != nil {
			return nil, usagef("--nkey (NATS_NKEY): %w", err)
		}
		opts = append(opts, opt)
	}
	switch {
	case c.user != "" && c.password == "":
		// A user without a password is a token, as with the nats CLI.
		opts = append(opts, nats.Token(c.user))
	case c.user != "":
		opts = append(opts, nats.UserInfo(c.user, c.password))
	}
	if c.tlsCert != "" {
		opts = append(opts, nats.ClientCert(c.tlsCert, c.tlsKey))
	}
	if c.tlsCA != "" {
		opts = append(opts, nats.RootCAs(c.tlsCA))
	}
	nc, err := nats.Connect(c.server, opts...)
	if err != nil {
		return nil, &unreachableError{url: redactURLs(c.server), err: err}
	}
	return nc, nil
}

// redactURLs hides the passwords of a comma-separated URL list.
func redactURLs(servers string) string {
	parts := strings.Split(servers, ",")
	for i, p := range parts {
		p = strings.TrimSpace(p)
		if u, err := url.Parse(p); err == nil && u.User != nil {
			p = u.Redacted()
		}
		parts[i] = p
	}
	return strings.Join(parts, ",")
}
