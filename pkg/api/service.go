package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"github.com/rs/zerolog"
)

// SchemaURL is the JSON Schema document describing every request and reply
// body (docs/schema/api.schema.json); endpoint metadata points into it.
const SchemaURL = "https://github.com/salvo-run/salvo/docs/schema/api.schema.json"

// Service is the batch API as a NATS micro service. Handlers of one
// endpoint run one at a time per process (the micro package serves each
// endpoint from one subscription); a queue group spreads requests over
// every process serving the API.
type Service struct {
	store  Store
	events Events
	engine Engine
	log    zerolog.Logger
	clock  func() time.Time
	cfg    Config

	mu       sync.Mutex
	svc      micro.Service
	started  bool
	stopping bool
	// ctx is the service's lifetime, from Start to the end of Stop; every
	// handler and every background EndQueued runs under it.
	ctx    context.Context
	cancel context.CancelCauseFunc
	// handlers counts running handlers, background the EndQueued calls.
	handlers   sync.WaitGroup
	background sync.WaitGroup
	// ending holds the batches with an EndQueued running (one per batch).
	ending map[string]bool
}

// New builds the service; Start registers it.
func New(d Deps, c Config) (*Service, error) {
	c = c.WithDefaults()
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("api: %w", err)
	}
	if d.Store == nil || d.Events == nil || d.Engine == nil {
		return nil, errors.New("api: Deps.Store, Deps.Events and Deps.Engine are required")
	}
	log := zerolog.Nop()
	if d.Logger != nil {
		log = *d.Logger
	}
	clock := d.Clock
	if clock == nil {
		clock = time.Now
	}
	return &Service{
		store:  d.Store,
		events: d.Events,
		engine: d.Engine,
		log:    log.With().Str("component", "api").Logger(),
		clock:  clock,
		cfg:    c,
		ending: make(map[string]bool),
	}, nil
}

// endpointSpec is one endpoint: its handler and the schema definitions of
// its request and reply bodies.
type endpointSpec struct {
	name        string
	description string
	handle      func(*call) (any, error)
	request     string
	reply       string
}

func (s *Service) endpoints() []endpointSpec {
	return []endpointSpec{
		{EndpointBatchCreate, "Create a batch (idempotent by id)", s.batchCreate, "batch.create.request", "batch"},
		{EndpointBatchSeal, "Set an open batch's total", s.batchSeal, "batch.seal.request", "batch"},
		{EndpointBatchGet, "Read a batch", s.batchGet, "batch.get.request", "batch"},
		{EndpointBatchCancel, "Cancel a batch", s.batchCancel, "batch.cancel.request", "batch"},
		{EndpointBatchList, "List batches, newest first", s.batchList, "batch.list.request", "batch_list"},
		{EndpointRequestGet, "Read a request", s.requestGet, "request.get.request", "request"},
		{EndpointRequestCancel, "Cancel a request", s.requestCancel, "request.cancel.request", "request"},
	}
}

// Start registers the micro service "salvo" on nc with every endpoint under
// <prefix>.api. A service starts once.
func (s *Service) Start(nc *nats.Conn) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started || s.stopping {
		return errors.New("api: service already started")
	}
	svc, err := micro.AddService(nc, micro.Config{
		Name:        ServiceName,
		Version:     MicroVersion(s.cfg.Version),
		Description: "salvo batch API: create, seal, get, list and cancel batches; get and cancel their requests",
		Metadata: map[string]string{
			"salvo_version": s.cfg.Version,
			"prefix":        s.cfg.Prefix,
			"schema":        SchemaURL,
		},
		ErrorHandler: func(_ micro.Service, e *micro.NATSError) {
			s.log.Warn().Str("subject", e.Subject).Str("error", e.Description).Msg("micro service error")
		},
	})
	if err != nil {
		return fmt.Errorf("api: add service: %w", err)
	}
	// The lifetime of the service starts here, not in a caller's request:
	// Stop ends it.
	s.ctx, s.cancel = context.WithCancelCause(context.Background())
	group := svc.AddGroup(Group(s.cfg.Prefix))
	for _, ep := range s.endpoints() {
		err := group.AddEndpoint(microName(ep.name), s.handler(ep),
			micro.WithEndpointSubject(ep.name),
			micro.WithEndpointMetadata(map[string]string{
				"description":     ep.description,
				"request_schema":  SchemaURL + "#/$defs/" + ep.request,
				"response_schema": SchemaURL + "#/$defs/" + ep.reply,
				"error_schema":    SchemaURL + "#/$defs/error",
			}))
		if err != nil {
			_ = svc.Stop()
			s.cancel(ErrStopped)
			return fmt.Errorf("api: add endpoint %s: %w", ep.name, err)
		}
	}
	// The endpoints answer once the server has their subscriptions: a
	// request sent right after Start must not find no responders.
	if err := nc.Flush(); err != nil {
		_ = svc.Stop()
		s.cancel(ErrStopped)
		return fmt.Errorf("api: register endpoints: %w", err)
	}
	s.svc = svc
	s.started = true
	s.log.Info().Str("group", Group(s.cfg.Prefix)).Str("version", s.cfg.Version).Msg("batch API started")
	return nil
}

// Stop unregisters the service and waits for its work; safe to call twice
// and before Start.
//
// Shutdown order: refuse new requests (they answer unavailable, so the
// client retries on another process) and unsubscribe → wait for the
// running handlers (each bounded by Config.Timeout) → cancel the
// background EndQueued calls with ErrStopped (the sweep finishes what they
// leave) → wait for them.
func (s *Service) Stop() error {
	s.mu.Lock()
	if s.stopping {
		s.mu.Unlock()
		return nil
	}
	s.stopping = true
	svc := s.svc
	s.mu.Unlock()
	if svc == nil {
		return nil
	}
	err := svc.Stop()
	s.handlers.Wait()
	s.cancel(ErrStopped)
	s.background.Wait()
	if err != nil {
		return fmt.Errorf("api: stop: %w", err)
	}
	return nil
}

// call is one API request being answered.
type call struct {
	ctx  context.Context
	req  micro.Request
	log  zerolog.Logger
	data []byte
	// after runs once the reply is sent (batch.cancel's EndQueued).
	after func()
}

// handler wraps an endpoint's handle: it decodes nothing itself, bounds
// the call by Config.Timeout, sends the reply or the error reply, then
// runs the call's after.
func (s *Service) handler(ep endpointSpec) micro.Handler {
	log := s.log.With().Str("endpoint", ep.name).Logger()
	return micro.HandlerFunc(func(req micro.Request) {
		if !s.enter() {
			s.replyError(req, log, &Error{Code: CodeUnavailable, Message: "the service is stopping; retry"})
			return
		}
		defer s.handlers.Done()
		ctx, cancel := context.WithTimeout(s.ctx, s.cfg.Timeout)
		defer cancel()
		c := &call{ctx: ctx, req: req, log: log, data: req.Data()}
		out, err := ep.handle(c)
		if err != nil {
			s.replyError(req, log, err)
			return
		}
		if err := req.RespondJSON(out); err != nil {
			log.Warn().Err(err).Msg("reply not sent")
		}
		if c.after != nil {
			c.after()
		}
	})
}

// enter counts a handler in, unless the service is stopping.
func (s *Service) enter() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopping {
		return false
	}
	s.handlers.Add(1)
	return true
}

// replyError answers with a micro error: code and message in the headers,
// ErrorReply as the body.
func (s *Service) replyError(req micro.Request, log zerolog.Logger, err error) {
	e := translate(err, "not found")
	switch e.Code {
	case CodeInternal:
		log.Error().Err(err).Msg("request failed")
	case CodeUnavailable:
		log.Warn().Err(err).Msg("request failed")
	default:
		log.Debug().Err(err).Str("code", e.Code).Msg("request refused")
	}
	body, merr := json.Marshal(ErrorReply{Error: ErrorDetail{Code: e.Code, Message: e.Message}})
	if merr != nil {
		body = nil
	}
	if err := req.Error(e.Code, e.Message, body); err != nil {
		log.Warn().Err(err).Msg("error reply not sent")
	}
}
