package ratelimit

import (
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/salvo-run/salvo/pkg/lifecycle"
)

// Dim is one of a budget's four per-minute limits.
type Dim int

// The budgets a key × model can have.
const (
	Requests     Dim = iota // calls per minute
	Tokens                  // input + output tokens per minute (OpenAI's TPM)
	InputTokens             // input tokens per minute (Anthropic's ITPM)
	OutputTokens            // output tokens per minute (Anthropic's OTPM)
	NumDims
)

// Amounts holds one value per Dim.
type Amounts [NumDims]int64

// Unknown fills an Amounts whose values are all unknown (-1).
var Unknown = Amounts{-1, -1, -1, -1}

// Any reports whether some value is above zero.
func (a Amounts) Any() bool {
	for _, v := range a {
		if v > 0 {
			return true
		}
	}
	return false
}

// Window is what a response said about one budget. Limit and Remaining are
// -1 when the response did not say (or said -1, or something unreadable);
// Reset is 0 when unknown.
type Window struct {
	Limit     int64
	Remaining int64
	Reset     time.Duration
}

// Observation is what a response's headers said about the budgets of the
// key × model it was sent with.
type Observation struct {
	Windows [NumDims]Window
	// HoldFor is the retry-after-ms or retry-after of a 429 or 503: nobody
	// in the fleet sends to the key × model before it has passed.
	HoldFor time.Duration
	// Seen is set when any limit, remaining count or hold was read.
	Seen bool
}

// Limits are the observed limits, -1 where unknown.
func (o Observation) Limits() Amounts {
	a := Unknown
	for d, w := range o.Windows {
		a[d] = w.Limit
	}
	return a
}

// Remaining are the observed remaining counts, -1 where unknown.
func (o Observation) Remaining() Amounts {
	a := Unknown
	for d, w := range o.Windows {
		a[d] = w.Remaining
	}
	return a
}

// Header prefixes (canonical form) of the two vendors' rate-limit headers.
const (
	openAIPrefix    = "X-Ratelimit-"
	anthropicPrefix = "Anthropic-Ratelimit-"
)

// ParseHeaders reads the rate-limit headers of a response with status:
//
//   - OpenAI: x-ratelimit-{limit,remaining,reset}-{requests,tokens}, resets
//     as Go-style durations ("6m0s", "12ms", "1.5s");
//   - Anthropic: anthropic-ratelimit-{requests,tokens,input-tokens,
//     output-tokens}-{limit,remaining,reset}, resets as RFC 3339 times;
//   - on a 429 or 503, retry-after-ms (milliseconds) or else retry-after
//     (seconds or an HTTP date) as HoldFor.
//
// A value of -1, a missing header or one that does not parse leaves that
// field unknown; nothing here fails.
func ParseHeaders(h http.Header, status int, now time.Time) Observation {
	o := Observation{}
	for d := range o.Windows {
		o.Windows[d] = Window{Limit: -1, Remaining: -1}
	}
	for name, vs := range h {
		if len(vs) == 0 {
			continue
		}
		switch {
		case strings.HasPrefix(name, openAIPrefix):
			o.openAI(name[len(openAIPrefix):], vs[0])
		case strings.HasPrefix(name, anthropicPrefix):
			o.anthropic(name[len(anthropicPrefix):], vs[0], now)
		}
	}
	if status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable {
		if d, ok := parseRetryAfterMS(h.Get("Retry-After-Ms")); ok {
			o.HoldFor = d
		} else if d, ok := lifecycle.ParseRetryAfter(h.Get("Retry-After"), now); ok {
			o.HoldFor = d
		}
		if o.HoldFor > 0 {
			o.Seen = true
		}
	}
	return o
}

// openAI reads one x-ratelimit-<field>-<dim> header (name without prefix).
func (o *Observation) openAI(name, v string) {
	field, dimName, ok := strings.Cut(strings.ToLower(name), "-")
	if !ok {
		return
	}
	var d Dim
	switch dimName {
	case "requests":
		d = Requests
	case "tokens":
		d = Tokens
	default:
		return
	}
	o.set(d, field, v, func(s string) (time.Duration, bool) {
		r, err := time.ParseDuration(strings.TrimSpace(s))
		return r, err == nil && r >= 0
	})
}

// anthropic reads one anthropic-ratelimit-<dim>-<field> header.
func (o *Observation) anthropic(name, v string, now time.Time) {
	name = strings.ToLower(name)
	i := strings.LastIndexByte(name, '-')
	if i < 0 {
		return
	}
	dimName, field := name[:i], name[i+1:]
	var d Dim
	switch dimName {
	case "requests":
		d = Requests
	case "tokens":
		d = Tokens
	case "input-tokens":
		d = InputTokens
	case "output-tokens":
		d = OutputTokens
	default:
		return
	}
	o.set(d, field, v, func(s string) (time.Duration, bool) {
		t, err := time.Parse(time.RFC3339, strings.TrimSpace(s))
		if err != nil {
			return 0, false
		}
		return max(t.Sub(now), 0), true
	})
}

func (o *Observation) set(d Dim, field, v string, reset func(string) (time.Duration, bool)) {
	switch field {
	case "limit":
		if n, ok := parseCount(v); ok && n > 0 {
			o.Windows[d].Limit, o.Seen = n, true
		}
	case "remaining":
		if n, ok := parseCount(v); ok {
			o.Windows[d].Remaining, o.Seen = n, true
		}
	case "reset":
		if r, ok := reset(v); ok {
			o.Windows[d].Reset = r
		}
	}
}

// parseCount reads a non-negative count; -1 (the providers' "unknown") and
// garbage are not counts.
func parseCount(v string) (int64, bool) {
	n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	if err != nil || n < 0 {
		return 0, false
	}
	return n, true
}

// parseRetryAfterMS reads retry-after-ms: milliseconds, possibly fractional.
func parseRetryAfterMS(v string) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	ms, err := strconv.ParseFloat(v, 64)
	if err != nil || ms < 0 || math.IsNaN(ms) || math.IsInf(ms, 0) || ms > float64(math.MaxInt64/int64(time.Millisecond)) {
		return 0, false
	}
	return time.Duration(ms * float64(time.Millisecond)), true
}
