// Package gateway serves the OpenAI Batch API over HTTP — /v1/files and
// /v1/batches with OpenAI's wire shapes — so the official SDKs run against
// salvo by changing their base URL. It is a client of salvo like any
// other: batches through the batch API (pkg/client), requests published to
// the REQUESTS stream, results read from RESULTS; its own state is two
// JetStream stores, the object store <P>_FILES (the files, streamed in and
// out) and the key-value bucket <P>_GATEWAY (what OpenAI's batch object
// has that salvo's does not: tenant, input and output files, validation
// errors, usage). It keeps nothing in memory between requests, so any
// number of gateways serve the same deployment.
//
// Every call carries a bearer key; its SHA-256 names a tenant (Config.Keys;
// keys are never kept or logged in clear), and a tenant sees only its own
// files and batches: another tenant's id answers 404.
package gateway

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/salvo-run/salvo/internal/producer"
	"github.com/salvo-run/salvo/pkg/client"
	"github.com/salvo-run/salvo/pkg/lifecycle"
	"github.com/salvo-run/salvo/pkg/queue"
)

// Defaults.
const (
	AddrDefault = "127.0.0.1:8080"
	// MaxFileBytesDefault is OpenAI's limit of a batch input file.
	MaxFileBytesDefault = producer.MaxBytesDefault
	// MaxRequestsDefault is OpenAI's limit of requests per batch.
	MaxRequestsDefault = producer.MaxRequestsDefault
	// FileTTLDefault bounds how long a file is kept when its upload sets
	// no expiry (OpenAI keeps batch files until deleted; salvo bounds
	// every store).
	FileTTLDefault = 30 * 24 * time.Hour
	// maxJSONBody bounds a JSON request body (batch create).
	maxJSONBody = 1 << 20
	// transferTimeout bounds one file's transfer to or from the object
	// store (the HTTP server's own read and write timeouts match it).
	transferTimeout = 30 * time.Minute
)

// WindowsDefault are the completion windows a batch may ask for: OpenAI's
// 24h, and salvo's shorter and longer ones.
var WindowsDefault = []string{"24h", "1h", "168h"}

// Endpoints are the endpoints a batch may run, as OpenAI's.
var Endpoints = []string{"/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/responses", "/v1/moderations"}

// Config tunes the gateway.
type Config struct {
	// Addr is the listen address (cmd/gateway).
	Addr string
	// Prefix is the deployment's subject prefix ("" for salvo).
	Prefix string
	// Keys maps the SHA-256 (hex) of each bearer key to its tenant.
	Keys map[string]string
	// Windows are the accepted completion windows (default
	// WindowsDefault).
	Windows []string
	// MaxFileBytes bounds an upload (default MaxFileBytesDefault).
	MaxFileBytes int64
	// MaxRequests bounds a batch's requests (default MaxRequestsDefault).
	MaxRequests int
	// FileTTL bounds a file's life (default FileTTLDefault); an upload's
	// expires_after may shorten it.
	FileTTL time.Duration
	// MixedModels accepts files whose lines name several models (salvo
	// routes each by its own); by default a file has one model, as
	// OpenAI requires (model_mismatch).
	MixedModels bool
	// Meter records the gateway's metrics; nil records none.
	Meter metric.MeterProvider `json:"-"`
	// Tracer makes a span per batch it publishes and one per request;
	// nil makes none.
	Tracer trace.TracerProvider `json:"-"`
}

// HashKey is the form a bearer key takes in Config.Keys.
func HashKey(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

func (c Config) withDefaults() Config {
	if c.Addr == "" {
		c.Addr = AddrDefault
	}
	if c.Prefix == "" {
		c.Prefix = lifecycle.PrefixDefault
	}
	if len(c.Windows) == 0 {
		c.Windows = WindowsDefault
	}
	if c.MaxFileBytes == 0 {
		c.MaxFileBytes = MaxFileBytesDefault
	}
	if c.MaxRequests == 0 {
		c.MaxRequests = MaxRequestsDefault
	}
	if c.FileTTL == 0 {
		c.FileTTL = FileTTLDefault
	}
	return c
}

func (c Config) validate() error {
	if len(c.Keys) == 0 {
		return errors.New("gateway: keys: at least one key is required (every call is authenticated)")
	}
	for h, tenant := range c.Keys {
		if b, err := hex.DecodeString(h); err != nil || len(b) != sha256.Size {
			return fmt.Errorf("gateway: SALVO_GATEWAY_KEYS: an entry of %d characters is not a SHA-256 in hex (gateway hash-key KEY prints one; never give the key itself)", len(h))
		}
		if tenant == "" {
			return errors.New("gateway: keys: a key has no tenant")
		}
	}
	for _, w := range c.Windows {
		if _, err := lifecycle.ParseCompletionWindow(w); err != nil {
			return fmt.Errorf("gateway: windows: %w", err)
		}
	}
	switch {
	case c.MaxFileBytes < 1:
		return fmt.Errorf("gateway: -max-file-bytes (SALVO_GATEWAY_MAX_FILE_BYTES) %d must be positive", c.MaxFileBytes)
	case c.MaxRequests < 1:
		return fmt.Errorf("gateway: -max-requests (SALVO_GATEWAY_MAX_REQUESTS) %d must be positive", c.MaxRequests)
	case c.FileTTL <= 0:
		return fmt.Errorf("gateway: -file-ttl (SALVO_GATEWAY_FILE_TTL) %s must be positive", c.FileTTL)
	}
	return nil
}

// Server is a gateway.
type Server struct {
	cfg   Config
	nc    *nats.Conn
	js    jetstream.JetStream
	api   *client.Client
	queue *queue.Client // publishes requests; one per gateway
	id    string        // this instance, as a lease owner
	log   zerolog.Logger
	files jetstream.ObjectStore
	kv    jetstream.KeyValue
	mux   *http.ServeMux
	// metrics are the gateway's instruments (metrics.go).
	metrics *metrics
	bg      context.Context
	stopBg  context.CancelFunc
	wg      sync.WaitGroup

	mu       sync.Mutex
	building map[string]bool // batches whose files this process is building
	leases   atomic.Uint64   // numbers this process's lease holdings (holdLease)
}

// New returns a gateway over nc; Start makes its stores.
func New(nc *nats.Conn, cfg Config, log zerolog.Logger) (*Server, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	q, err := queue.New(nc, queue.Config{Prefix: cfg.Prefix}, log)
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, nc: nc, js: js, api: client.New(nc, cfg.Prefix), queue: q, id: "gateway-" + orderedHex(),
		log: log.With().Str("component", "gateway").Logger(), building: map[string]bool{}}
	if s.metrics, err = newMetrics(cfg.Meter); err != nil {
		return nil, err
	}
	s.bg, s.stopBg = context.WithCancel(context.Background())
	s.routes()
	return s, nil
}

// Start creates the gateway's object store and key-value bucket when they
// are missing, and resumes validations a gateway left half done.
func (s *Server) Start(ctx context.Context) error {
	up := strings.ToUpper(s.cfg.Prefix)
	var err error
	s.files, err = s.js.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{
		Bucket: up + "_FILES", Description: "salvo gateway: batch input, output and error files",
		TTL: s.cfg.FileTTL,
	})
	if err != nil {
		return fmt.Errorf("gateway: object store %s_FILES: %w", up, err)
	}
	s.kv, err = s.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: up + "_GATEWAY", Description: "salvo gateway: the batches' OpenAI fields",
		TTL: s.cfg.FileTTL + lifecycle.MaxCompletionWindow,
	})
	if err != nil {
		return fmt.Errorf("gateway: key-value %s_GATEWAY: %w", up, err)
	}
	return nil
}

// Handler is the gateway's HTTP handler.
func (s *Server) Handler() http.Handler { return s.metrics.count(s.mux) }

// Close stops the background work (validations, output files) and waits
// for it; work cut short is taken up again by the next GET of its batch.
func (s *Server) Close() error {
	s.stopBg()
	s.wg.Wait()
	s.queue.Close()
	return nil
}

func (s *Server) routes() {
	m := http.NewServeMux()
	// File transfers get the server's long bounds (cmd/gateway: 30
	// minutes); every other call must be read within callReadTimeout and
	// answered within callWriteTimeout, so a slow client cannot hold one
	// open.
	m.HandleFunc("POST /v1/files", s.auth(s.uploadFile))
	m.HandleFunc("GET /v1/files", short(s.auth(s.listFiles)))
	m.HandleFunc("GET /v1/files/{id}", short(s.auth(s.getFile)))
	m.HandleFunc("DELETE /v1/files/{id}", short(s.auth(s.deleteFile)))
	m.HandleFunc("GET /v1/files/{id}/content", s.auth(s.fileContent))
	m.HandleFunc("POST /v1/batches", short(s.auth(s.createBatch)))
	m.HandleFunc("GET /v1/batches", short(s.auth(s.listBatches)))
	m.HandleFunc("GET /v1/batches/{id}", short(s.auth(s.getBatch)))
	m.HandleFunc("POST /v1/batches/{id}/cancel", short(s.auth(s.cancelBatch)))
	m.HandleFunc("GET /v1/batches/{id}/output", s.auth(s.partialOutput))
	m.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, errNotFound, "", fmt.Sprintf("Unknown request URL: %s %s.", r.Method, r.URL.Path))
	})
	s.mux = m
}

// Deadlines of the calls that move no file.
const (
	callReadTimeout  = 30 * time.Second
	callWriteTimeout = 2 * time.Minute
)

// short bounds a call that moves no file: its body must arrive within
// callReadTimeout and its answer leave within callWriteTimeout, whatever
// the server's longer bounds for file transfers.
func short(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		now := time.Now()
		// Not every ResponseWriter supports deadlines (httptest's
		// recorder); the server's own bounds apply then.
		_ = rc.SetReadDeadline(now.Add(callReadTimeout))
		_ = rc.SetWriteDeadline(now.Add(callWriteTimeout))
		h(w, r)
	}
}

// tenant is the authenticated caller of a request.
type tenant struct {
	name string
	// ns is the tenant's namespace in store names: a hash of its name, so
	// any tenant name is a valid name part.
	ns string
}

// auth resolves the bearer key to its tenant, or answers 401. The key is
// hashed at once and never logged.
func (s *Server) auth(h func(http.ResponseWriter, *http.Request, tenant)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		key, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if key = strings.TrimSpace(key); !ok || key == "" {
			writeError(w, http.StatusUnauthorized, errAuth, "", "You didn't provide an API key. Give it as 'Authorization: Bearer KEY'.")
			return
		}
		name, known := s.cfg.Keys[HashKey(key)]
		if !known {
			writeCodedError(w, http.StatusUnauthorized, errAuth, "", codeInvalidKey, "Incorrect API key provided. Give a key the gateway knows as 'Authorization: Bearer KEY'.")
			return
		}
		sum := sha256.Sum256([]byte(name))
		h(w, r, tenant{name: name, ns: hex.EncodeToString(sum[:8])})
	}
}
