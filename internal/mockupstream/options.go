package mockupstream

import (
	"net/http"
	"time"
)

// StatusReset in a Sequence (or drawn from FailureMix.Reset) resets the TCP
// connection after the request was read, before any status line.
const StatusReset = -1

// Defaults.
const (
	AddrDefault       = "127.0.0.1:0"
	RetryAfterDefault = time.Second
	ReplyWordsDefault = 12
)

// Latency is the delay before answering: fixed Min when Max <= Min, else
// uniform in [Min, Max] (seeded).
type Latency struct {
	Min time.Duration
	Max time.Duration
}

// FailureMix is the fraction of calls (0..1 each, summing to at most 1)
// that fail, drawn from the server's seeded RNG, after any Sequence.
type FailureMix struct {
	// RateLimited calls answer 429 with a Retry-After of RetryAfter.
	RateLimited float64
	// RetryAfter is sent with 429s, in whole seconds rounded up (default 1s).
	RetryAfter time.Duration
	// ServerError calls answer 500.
	ServerError float64
	// Unavailable calls answer 503.
	Unavailable float64
	// Reset calls have their connection reset before the status line.
	Reset float64
}

// Stall pauses a call at one or more phases. Each pause also ends when the
// client disconnects or the server closes.
type Stall struct {
	// UploadDelay: wait this long before reading the request body at all.
	UploadDelay time.Duration
	// UploadReadChunk/UploadReadInterval: read the request body
	// UploadReadChunk bytes at a time, pausing UploadReadInterval between
	// reads (a slow but progressing upload).
	UploadReadChunk    int
	UploadReadInterval time.Duration
	// BeforeHeaders: wait after the request was read, before the status line.
	BeforeHeaders time.Duration
	// BeforeFirstEvent: in a stream, send the headers, then wait this long
	// before the first event.
	BeforeFirstEvent time.Duration
	// MidStream: in a stream, wait this long after the first event.
	MidStream time.Duration
	// DripInterval/DripChunk: write a non-streamed body DripChunk bytes
	// (default 1) at a time, pausing DripInterval between writes.
	DripInterval time.Duration
	DripChunk    int
}

// Script is the behaviour of a call. Zero fields inherit from the less
// specific level (request id → model → Options.Script).
type Script struct {
	Latency  *Latency
	Failures *FailureMix
	// Sequence: the status of a request id's n-th call is Sequence[n-1]
	// while there are entries (200 answers normally, StatusReset resets);
	// later calls follow Failures.
	Sequence []int
	Stall    *Stall
	// ChunkDelay is the pause between SSE chunks.
	ChunkDelay time.Duration
	// ReplyWords is the length of the generated reply (default 12 words).
	ReplyWords int
	// StreamErrorAfter > 0: after that many chunks a stream sends
	// {"error":{"code":StreamErrorCode,…}} and ends (status stays 200).
	StreamErrorAfter int
	StreamErrorCode  int
	// StreamCutAfter > 0: after that many chunks a stream ends cleanly at
	// the HTTP level but without its remaining chunks or "data: [DONE]"
	// (an upstream that dropped the generation mid-way).
	StreamCutAfter int
}

// merge returns s with every zero field taken from base.
func (s Script) merge(base Script) Script {
	if s.Latency == nil {
		s.Latency = base.Latency
	}
	if s.Failures == nil {
		s.Failures = base.Failures
	}
	if s.Sequence == nil {
		s.Sequence = base.Sequence
	}
	if s.Stall == nil {
		s.Stall = base.Stall
	}
	if s.ChunkDelay == 0 {
		s.ChunkDelay = base.ChunkDelay
	}
	if s.ReplyWords == 0 {
		s.ReplyWords = base.ReplyWords
	}
	if s.StreamErrorAfter == 0 {
		s.StreamErrorAfter, s.StreamErrorCode = base.StreamErrorAfter, base.StreamErrorCode
	}
	if s.StreamCutAfter == 0 {
		s.StreamCutAfter = base.StreamCutAfter
	}
	return s
}

// Options configures a Server.
type Options struct {
	// Addr to listen on; default 127.0.0.1:0 (a free loopback port).
	Addr string
	// Seed seeds latency and failure draws (0 = 1), so runs repeat.
	Seed uint64
	// Script applies to every call.
	Script Script
	// Models overrides Script per model name.
	Models map[string]Script
	// RecvBuffer > 0 sets SO_RCVBUF on accepted connections (small values
	// make upload stalls observable with modest bodies).
	RecvBuffer int
	// Record keeps every call's headers and body (see Received).
	Record bool
	// OnRequest runs when a request has arrived and its body was read,
	// before latency, failures or the answer; tests use it to look at
	// shared state at that moment. It runs on the handler's goroutine.
	OnRequest func(r *http.Request, requestID, model string)
	// Clock gives "created" timestamps; default time.Now.
	Clock func() time.Time
	// Limits enforces per-key budgets with OpenAI-style headers (nil:
	// none) and can script one fleet-wide hold.
	Limits *Limits
	// Knee > 0 is the self-hosted mode: a call's latency (Script.Latency's
	// Min) grows with the square of the calls in flight for its model
	// beyond Knee.
	Knee int
	// Logf receives the limit and hold log lines (nil: dropped).
	Logf func(format string, args ...any)
}
