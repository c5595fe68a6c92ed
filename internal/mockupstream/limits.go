package mockupstream

import (
	"encoding/json"
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/salvo-run/salvo/pkg/ratelimit"
)

// Limits makes the mock enforce an OpenAI-style budget per API key (the
// Authorization header) and model: every answer carries
// x-ratelimit-{limit,remaining,reset}-{requests,tokens}; a call over budget
// answers 429 with them and a retry-after of the wait. A call is charged
// one request and its usage's total tokens (prompt + completion), as it is
// answered.
type Limits struct {
	RPM int64
	TPM int64
	// HoldAfter > 0: the HoldAfter-th call answers 429 with a retry-after
	// of Hold, and the calls that arrive for its key × model while the
	// hold lasts (after HoldGrace, for calls already on their way) are
	// counted as hold violations (Stats) and logged.
	HoldAfter int64
	Hold      time.Duration
	HoldGrace time.Duration
}

// Stats are the mock's counters (GET /mock/stats).
type Stats struct {
	Calls          int64         `json:"calls"`
	Statuses       map[int]int64 `json:"statuses"`
	TokensAdmitted int64         `json:"tokens_admitted"`
	FirstCall      time.Time     `json:"first_call"`
	LastCall       time.Time     `json:"last_call"`
	// HoldAt is when the scripted hold (Limits.HoldAfter) began.
	HoldAt time.Time `json:"hold_at,omitzero"`
	// HoldViolations are calls of the held key × model that arrived
	// between HoldAt+HoldGrace and HoldAt+Hold.
	HoldViolations int64 `json:"hold_violations"`
	// CallsAfterHold are the calls that arrived in the second after the
	// hold ended (work resumed).
	CallsAfterHold int64 `json:"calls_after_hold"`
}

// limiter is the mock's per key × model state.
type limiter struct {
	on   bool
	opts Limits
	mu   sync.Mutex
	bkts map[string]*ratelimit.Bucket
	st   Stats
	// holdKey is the key × model of the scripted hold.
	holdKey string
	logf    func(format string, args ...any)
}

func newLimiter(o *Limits, logf func(string, ...any)) *limiter {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	l := &limiter{bkts: map[string]*ratelimit.Bucket{}, st: Stats{Statuses: map[int]int64{}}, logf: logf}
	if o != nil {
		l.on, l.opts = true, *o
	}
	return l
}

// admit charges a call and writes its headers; false means it was answered
// 429 already.
func (l *limiter) admit(w http.ResponseWriter, r *http.Request, model string, tokens int64) bool {
	if !l.on {
		return true
	}
	now := time.Now()
	key := r.Header.Get("Authorization") + "\x00" + model
	l.mu.Lock()
	defer l.mu.Unlock()
	l.st.Calls++
	if l.st.FirstCall.IsZero() {
		l.st.FirstCall = now
	}
	l.st.LastCall = now
	if !l.st.HoldAt.IsZero() && key == l.holdKey {
		switch since := now.Sub(l.st.HoldAt); {
		case since > l.opts.HoldGrace && since <= l.opts.Hold:
			l.st.HoldViolations++
			l.logf("mockupstream: call %d for the held model %s %s after the 429 with retry-after (hold %s)", l.st.Calls, model, since, l.opts.Hold)
		case since > l.opts.Hold && since <= l.opts.Hold+time.Second:
			l.st.CallsAfterHold++
		}
	}
	if l.opts.HoldAfter > 0 && l.st.Calls == l.opts.HoldAfter {
		l.st.HoldAt, l.holdKey = now, key
		l.logf("mockupstream: call %d for %s answers 429 retry-after %s", l.st.Calls, model, l.opts.Hold)
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(l.opts.Hold.Seconds()))))
		l.st.Statuses[http.StatusTooManyRequests]++
		return false
	}
	if l.opts.RPM <= 0 && l.opts.TPM <= 0 {
		l.st.Statuses[http.StatusOK]++
		return true
	}
	b := l.bkts[key]
	if b == nil {
		b = &ratelimit.Bucket{Limits: ratelimit.Amounts{ratelimit.Requests: l.opts.RPM, ratelimit.Tokens: l.opts.TPM}}
		l.bkts[key] = b
	}
	ok, wait := b.Admit(now, ratelimit.Amounts{ratelimit.Requests: 1, ratelimit.Tokens: tokens}, 0)
	levels := b.Levels(now)
	h := w.Header()
	for _, d := range []struct {
		name string
		dim  ratelimit.Dim
	}{{"requests", ratelimit.Requests}, {"tokens", ratelimit.Tokens}} {
		lim := b.Limits[d.dim]
		if lim <= 0 {
			continue
		}
		left := max(int64(levels[d.dim]), 0)
		h.Set("X-Ratelimit-Limit-"+d.name, strconv.FormatInt(lim, 10))
		h.Set("X-Ratelimit-Remaining-"+d.name, strconv.FormatInt(left, 10))
		full := time.Duration(float64(lim-left) / float64(lim) * float64(time.Minute)).Round(time.Millisecond)
		h.Set("X-Ratelimit-Reset-"+d.name, full.String())
	}
	if !ok {
		h.Set("Retry-After-Ms", strconv.FormatInt(max(wait.Milliseconds(), 1), 10))
		h.Set("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
		l.st.Statuses[http.StatusTooManyRequests]++
		return false
	}
	l.st.Statuses[http.StatusOK]++
	l.st.TokensAdmitted += tokens
	return true
}

// stats is a copy of the counters.
func (l *limiter) stats() Stats {
	l.mu.Lock()
	defer l.mu.Unlock()
	st := l.st
	st.Statuses = make(map[int]int64, len(l.st.Statuses))
	for k, v := range l.st.Statuses {
		st.Statuses[k] = v
	}
	return st
}

// Stats returns the limit counters.
func (s *Server) Stats() Stats { return s.limits.stats() }

func (s *Server) serveStats(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(s.Stats())
}

// kneeLatency is the self-hosted mode's latency with c calls in flight:
// base up to the knee, then growing with the square of the overload, so
// throughput falls past the knee as a saturated GPU server's does.
func kneeLatency(base time.Duration, knee, c int) time.Duration {
	if knee <= 0 || c <= knee {
		return base
	}
	f := float64(c) / float64(knee)
	return time.Duration(float64(base) * f * f)
}
