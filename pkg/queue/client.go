package queue

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
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
	subj  subjects

	// maxDeliver is cfg.MaxDeliver as SetMaxDeliver last set it.
	maxDeliver atomic.Int64
	// warned holds the Diff texts of model consumers already logged.
	warned sync.Map

	subjMu     sync.Mutex
	subjStream map[string]subjectRoute // result subject → captured by a stream?

	// announced holds, per model name, when this process last announced
	// it (announce.go): a *atomic.Int64 of unix nanos.
	announced sync.Map
	// announcedN counts announced's entries; past announcedMax the map
	// is cleared (announce.go), so model names chosen by clients cannot
	// grow it without bound.
	announcedN atomic.Int64

	reqStreamMu sync.Mutex
	reqStream   jetstream.Stream // REQUESTS, looked up at first use (requestStream)
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
	names := newNames(cfg.Prefix)
	c := &Client{
		nc:         nc,
		js:         js,
		cfg:        cfg,
		base:       log,
		log:        log.With().Str("component", "queue").Logger(),
		names:      names,
		subj:       subjects{prefix: cfg.Prefix, requests: names.requests, discovery: names.discovery},
		subjStream: map[string]subjectRoute{},
	}
	c.maxDeliver.Store(int64(cfg.MaxDeliver))
	return c, nil
}

// Config returns the effective configuration (defaults applied), with the
// MaxDeliver SetMaxDeliver last set.
func (c *Client) Config() Config {
	cfg := c.cfg
	cfg.MaxDeliver = int(c.maxDeliver.Load())
	return cfg
}

// RequestsStream and ResultsStream name the streams derived from the
// prefix. No production caller: tests and benchmarks read the streams
// directly with them.
func (c *Client) RequestsStream() string { return c.names.requests }
func (c *Client) ResultsStream() string  { return c.names.results }

// RequestSubject is the subject a request is published on. No production
// caller: tests use it to publish raw messages where a request would go.
func (c *Client) RequestSubject(model, batchID string) (string, error) {
	return c.subj.request(model, batchID)
}

// ResultSubject is the subject a batch's results are stored on.
func (c *Client) ResultSubject(batchID string) string {
	return c.subj.result(batchID)
}

// names holds the stream and bucket names derived from the prefix
// (subjects builds the subjects).
type names struct {
	requests   string
	results    string
	advisories string
	bodies     string
	discovery  string // the KV bucket of model announcements and the discovery leader
}

func newNames(prefix string) names {
	up := strings.ToUpper(prefix)
	return names{
		requests:   up + "_REQUESTS",
		results:    up + "_RESULTS",
		advisories: up + "_ADVISORIES",
		bodies:     up + "_BODIES",
		discovery:  up + "_DISCOVERY",
	}
}

// modelConsumerPrefix starts the name of every model consumer.
const modelConsumerPrefix = "model-"

// consumerName derives a durable name from a model token. Tokens use only
// [A-Za-z0-9_-], valid in names; very long ones are shortened with a hash
// so the name stays within the server's 255-byte limit and stays unique.
func consumerName(modelTok string) string {
	const maxTok = 160
	if len(modelTok) <= maxTok {
		return modelConsumerPrefix + modelTok
	}
	sum := sha256.Sum256([]byte(modelTok))
	return modelConsumerPrefix + modelTok[:maxTok] + "-" + hex.EncodeToString(sum[:8])
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

// Close releases what publishing left behind in the JetStream context (the
// async publish reply subscription and its reconnect watcher); a client
// that published requests calls it before its connection closes. The
// connection itself stays open.
func (c *Client) Close() { c.js.CleanupPublisher() }
