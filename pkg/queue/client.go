package queue

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/salvo-run/salvo/pkg/lifecycle"
)

// Header names carried on request messages.
const (
	HeaderTraceParent = "traceparent"
	HeaderTraceState  = "tracestate"
)

// minServer is the oldest nats-server the jetstream client package supports
// (named consumer create API, 2.9.0). Everything salvo uses exists in 2.9:
// work-queue streams, NakWithDelay (2.7.1), one filter subject per consumer,
// stream info subject filters, object stores, filtered purge.
var minServer = [3]int{2, 9, 0}

// Client is salvo's JetStream transport. It is safe for concurrent use.
type Client struct {
	nc   *nats.Conn
	js   jetstream.JetStream
	cfg  Config
	base zerolog.Logger // as injected; components add their own name
	log  zerolog.Logger

	names names

	subjMu     sync.Mutex
	subjStream map[string]subjectRoute // result subject → captured by a stream?
}

type subjectRoute struct {
	jetstream bool
	checked   time.Time
}

// New builds a Client on an open connection. It validates cfg (after
// WithDefaults) and does not touch the server: call Provision.
func New(nc *nats.Conn, cfg Config, log zerolog.Logger) (*Client, error) {
	if nc == nil {
		return nil, fmt.Errorf("%w: nil nats connection", ErrInvalidConfig)
	}
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	js, err := jetstream.New(nc,
		jetstream.WithPublishAsyncMaxPending(cfg.PublishWindow),
		jetstream.WithPublishAsyncTimeout(cfg.PublishTimeout),
	)
	if err != nil {
		return nil, fmt.Errorf("queue: jetstream: %w", err)
	}
	return &Client{
		nc:         nc,
		js:         js,
		cfg:        cfg,
		base:       log,
		log:        log.With().Str("component", "queue").Logger(),
		names:      newNames(cfg.Prefix),
		subjStream: map[string]subjectRoute{},
	}, nil
}

// Config returns the effective configuration (defaults applied).
func (c *Client) Config() Config { return c.cfg }

// RequestsStream, ResultsStream, AdvisoriesStream and BodiesBucket name the
// JetStream assets derived from the prefix.
func (c *Client) RequestsStream() string   { return c.names.requests }
func (c *Client) ResultsStream() string    { return c.names.results }
func (c *Client) AdvisoriesStream() string { return c.names.advisories }
func (c *Client) BodiesBucket() string     { return c.names.bodies }

// RequestSubject is the subject a request is published on.
func (c *Client) RequestSubject(model, batchID string) (string, error) {
	tok, err := lifecycle.EncodeToken(model)
	if err != nil {
		return "", err
	}
	return c.names.prefix + ".req." + tok + "." + lifecycle.BatchToken(batchID), nil
}

// ResultSubject is the subject a batch's results are stored on.
func (c *Client) ResultSubject(batchID string) string {
	return c.names.prefix + ".res." + lifecycle.BatchToken(batchID)
}

// ModelConsumerName is the durable consumer shared by all workers for model.
func (c *Client) ModelConsumerName(model string) (string, error) {
	tok, err := lifecycle.EncodeToken(model)
	if err != nil {
		return "", err
	}
	return consumerName(tok), nil
}

// names holds every name derived from the prefix.
type names struct {
	prefix     string
	requests   string
	results    string
	advisories string
	bodies     string
}

func newNames(prefix string) names {
	up := strings.ToUpper(prefix)
	return names{
		prefix:     prefix,
		requests:   up + "_REQUESTS",
		results:    up + "_RESULTS",
		advisories: up + "_ADVISORIES",
		bodies:     up + "_BODIES",
	}
}

// consumerName derives a durable name from a model token. Tokens use only
// [A-Za-z0-9_-], valid in names; very long ones are shortened with a hash
// so the name stays within the server's 255-byte limit and stays unique.
func consumerName(modelTok string) string {
	const maxTok = 160
	if len(modelTok) <= maxTok {
		return "model-" + modelTok
	}
	sum := sha256.Sum256([]byte(modelTok))
	return "model-" + modelTok[:maxTok] + "-" + hex.EncodeToString(sum[:8])
}

// serverAtLeast reports whether version ("2.10.3", "v2.9.10-beta") is at
// least want.
func serverAtLeast(version string, want [3]int) bool {
	v := strings.TrimPrefix(version, "v")
	if i := strings.IndexAny(v, "-+ "); i >= 0 {
		v = v[:i]
	}
	parts := strings.SplitN(v, ".", 3)
	for i := 0; i < 3; i++ {
		n := 0
		if i < len(parts) {
			var err error
			if n, err = strconv.Atoi(parts[i]); err != nil {
				return false
			}
		}
		if n != want[i] {
			return n > want[i]
		}
	}
	return true
}
