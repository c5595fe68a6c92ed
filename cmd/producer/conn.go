package main

import (
	"errors"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/spf13/pflag"

	"github.com/salvo-run/salvo/internal/natsconn"
	"github.com/salvo-run/salvo/pkg/lifecycle"
)

// Connection defaults.
const (
	serverDefault         = nats.DefaultURL
	connectTimeoutDefault = 2 * time.Second
	callTimeoutDefault    = 10 * time.Second
)

// connFlags are the connection flags, named like the nats CLI's, each
// with its environment variable (natsconn.Flags), and the producer's own.
// A flag given on the command line wins over its variable; the variable
// over the default.
type connFlags struct {
	nats                    natsconn.Flags
	prefix                  string
	connectTimeout, timeout time.Duration

	flags *pflag.FlagSet
}

const prefixEnv = "SALVO_PREFIX"

func (c *connFlags) register(fs *pflag.FlagSet) {
	c.flags = fs
	c.nats.ServerFlag = "server"
	fs.StringVarP(&c.nats.Server, "server", "s", serverDefault, "NATS server URLs, comma-separated (env NATS_URL)")
	c.nats.Register(fs)
	fs.StringVar(&c.prefix, "prefix", lifecycle.PrefixDefault, "salvo deployment prefix of the subjects (env SALVO_PREFIX)")
	fs.DurationVar(&c.connectTimeout, "connect-timeout", connectTimeoutDefault, "give up connecting to NATS after this long")
	fs.DurationVar(&c.timeout, "timeout", callTimeoutDefault, "give up waiting for one batch API reply after this long")
}

// resolve fills the flags not given on the command line from getenv and
// checks them.
func (c *connFlags) resolve(getenv func(string) string) error {
	c.nats.FromEnv(c.flags.Changed, getenv)
	if v := strings.TrimSpace(getenv(prefixEnv)); v != "" && !c.flags.Changed("prefix") {
		c.prefix = v
	}
	if err := c.nats.Config().Validate(); err != nil {
		return usagef("%s", c.nats.Problem(err))
	}
	switch {
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
	nc, err := c.nats.Config().Connect(
		nats.Name("salvo-producer"),
		nats.Timeout(c.connectTimeout),
		nats.RetryOnFailedConnect(false),
	)
	var ce *natsconn.ConnectError
	if errors.As(err, &ce) {
		return nil, &unreachableError{url: ce.URL, err: ce.Err, hint: ce.Hint(c.nats.Name)}
	}
	if err != nil {
		return nil, usagef("%s", c.nats.Problem(err))
	}
	return nc, nil
}
