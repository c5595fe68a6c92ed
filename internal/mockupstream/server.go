package mockupstream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Received is one recorded call (Options.Record).
type Received struct {
	Header http.Header
	Body   []byte
	At     time.Time
	// Proto is the call's protocol: "HTTP/1.1", or "HTTP/2.0" for a
	// client speaking HTTP/2 without TLS (the mock serves both).
	Proto string
}

// Server is a running mock upstream.
type Server struct {
	opts Options
	ln   net.Listener
	srv  *http.Server
	url  string

	total   atomic.Int64
	closing chan struct{}

	mu         sync.Mutex
	closed     bool
	handlers   sync.WaitGroup
	rnd        *rand.Rand
	calls      map[string]int
	answered   map[string]int // calls answered 200, per request id
	modelCalls map[string]int
	scripts    map[string]Script
	concurrent map[string]int
	maxConc    map[string]int
	received   map[string][]Received
	limits     *limiter
}

// New starts a server on Options.Addr (default a free loopback port).
func New(opts Options) (*Server, error) {
	if opts.Addr == "" {
		opts.Addr = AddrDefault
	}
	if opts.Seed == 0 {
		opts.Seed = 1
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	lc := net.ListenConfig{}
	if n := opts.RecvBuffer; n > 0 {
		lc.Control = func(_, _ string, c syscall.RawConn) error {
			var serr error
			if err := c.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, n)
			}); err != nil {
				return err
			}
			return serr
		}
	}
	ln, err := lc.Listen(context.Background(), "tcp", opts.Addr)
	if err != nil {
		return nil, fmt.Errorf("mockupstream: listen %s: %w", opts.Addr, err)
	}
	s := &Server{
		opts:       opts,
		ln:         ln,
		url:        "http://" + ln.Addr().String(),
		closing:    make(chan struct{}),
		rnd:        rand.New(rand.NewPCG(opts.Seed, opts.Seed^0x5bd1e995)),
		calls:      map[string]int{},
		answered:   map[string]int{},
		modelCalls: map[string]int{},
		scripts:    map[string]Script{},
		concurrent: map[string]int{},
		maxConc:    map[string]int{},
		received:   map[string][]Received{},
		limits:     newLimiter(opts.Limits, opts.Logf),
	}
	s.srv = &http.Server{Handler: http.HandlerFunc(s.serve), ReadHeaderTimeout: 30 * time.Second}
	// HTTP/1.1, and HTTP/2 without TLS for clients that start with its
	// preface (routes with h2c).
	s.srv.Protocols = new(http.Protocols)
	s.srv.Protocols.SetHTTP1(true)
	s.srv.Protocols.SetUnencryptedHTTP2(true)
	go func() {
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			_ = err // the listener was closed under us; Close reports nothing more
		}
	}()
	return s, nil
}

// URL is the server's base URL, e.g. http://127.0.0.1:41234.
func (s *Server) URL() string { return s.url }

// Addr is the listening address.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Close stops the server: stalls end, connections close, and Close waits
// for every handler to return. Safe to call twice.
func (s *Server) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	s.mu.Unlock()
	close(s.closing)
	_ = s.srv.Close()
	s.handlers.Wait()
}

// Script sets the behaviour of calls carrying requestID.
func (s *Server) Script(requestID string, sc Script) {
	s.mu.Lock()
	s.scripts[requestID] = sc
	s.mu.Unlock()
}

// SetSequence scripts the statuses of requestID's first calls, e.g.
// SetSequence("r1", 499, 503, 200) or SetSequence("r1", StatusReset, 200).
func (s *Server) SetSequence(requestID string, statuses ...int) {
	s.mu.Lock()
	sc := s.scripts[requestID]
	sc.Sequence = append([]int(nil), statuses...)
	s.scripts[requestID] = sc
	s.mu.Unlock()
}

// Calls is the number of calls received on the API endpoints.
func (s *Server) Calls() int64 { return s.total.Load() }

// CallsFor is the number of calls received for requestID.
func (s *Server) CallsFor(requestID string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[requestID]
}

// CallCount is what the mock saw of one request id: the calls received and
// how many of them it answered 200 (the answers a client pays for).
type CallCount struct {
	Calls    int `json:"calls"`
	Answered int `json:"answered"`
}

// CallLog is the calls received and answered per request id (GET
// /mock/calls), so a process outside the mock can count them.
func (s *Server) CallLog() map[string]CallCount {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]CallCount, len(s.calls))
	for id, n := range s.calls {
		out[id] = CallCount{Calls: n, Answered: s.answered[id]}
	}
	return out
}

// answer counts a 200 answer to requestID, made when its status line goes
// out.
func (s *Server) answer(requestID string) {
	s.mu.Lock()
	s.answered[requestID]++
	s.mu.Unlock()
}

// CallsForModel is how many calls named model in their body (a call
// rejected before its body was read names none).
func (s *Server) CallsForModel(model string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.modelCalls[model]
}

// Concurrent is the number of calls for model being served right now.
func (s *Server) Concurrent(model string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.concurrent[model]
}

// MaxConcurrent is the highest Concurrent(model) seen.
func (s *Server) MaxConcurrent(model string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.maxConc[model]
}

// Received returns the recorded calls for requestID (Options.Record).
func (s *Server) Received(requestID string) []Received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Received(nil), s.received[requestID]...)
}

// enter registers a handler unless the server is closing.
func (s *Server) enter() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.handlers.Add(1)
	return true
}

// begin counts a call and returns its 1-based number for the request id
// and the script that applies.
func (s *Server) begin(requestID, model string, r *http.Request, body []byte) (int, Script) {
	s.total.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls[requestID]++
	s.modelCalls[model]++
	n := s.calls[requestID]
	s.concurrent[model]++
	if c := s.concurrent[model]; c > s.maxConc[model] {
		s.maxConc[model] = c
	}
	if s.opts.Record {
		s.received[requestID] = append(s.received[requestID], Received{Header: r.Header.Clone(), Body: body, At: time.Now(), Proto: r.Proto})
	}
	sc := s.scripts[requestID].merge(s.opts.Models[model]).merge(s.opts.Script)
	return n, sc
}

func (s *Server) end(model string) {
	s.mu.Lock()
	s.concurrent[model]--
	s.mu.Unlock()
}

// decide returns the status of call n under sc.
func (s *Server) decide(n int, sc Script) int {
	if n-1 < len(sc.Sequence) {
		return sc.Sequence[n-1]
	}
	f := sc.Failures
	if f == nil {
		return http.StatusOK
	}
	s.mu.Lock()
	u := s.rnd.Float64()
	s.mu.Unlock()
	for _, b := range []struct {
		p      float64
		status int
	}{
		{f.RateLimited, http.StatusTooManyRequests}, {f.ServerError, http.StatusInternalServerError},
		{f.Unavailable, http.StatusServiceUnavailable}, {f.Reset, StatusReset},
	} {
		if u < b.p {
			return b.status
		}
		u -= b.p
	}
	return http.StatusOK
}

// latency draws the delay before answering.
func (s *Server) latency(sc Script) time.Duration {
	l := sc.Latency
	if l == nil {
		return 0
	}
	if l.Max <= l.Min {
		return l.Min
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return l.Min + time.Duration(s.rnd.Int64N(int64(l.Max-l.Min)+1))
}

// pause waits d, or until the client left or the server closes; it reports
// whether the full pause elapsed.
func (s *Server) pause(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
	case <-s.closing:
	}
	return false
}

// FetchCallLog reads the call log of the mock serving at baseURL (GET
// /mock/calls), for a mock running as its own process.
func FetchCallLog(ctx context.Context, baseURL string) (map[string]CallCount, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(baseURL, "/")+PathCallLog, nil)
	if err != nil {
		return nil, fmt.Errorf("mockupstream: call log: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("mockupstream: call log: %w", err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("mockupstream: call log: %s answered %s", baseURL, resp.Status)
	}
	var out map[string]CallCount
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, fmt.Errorf("mockupstream: call log: decode: %w", err)
	}
	return out, nil
}
