package httpclient

import (
	"errors"
	"fmt"
	"io"
	"time"
)

// Sentinel errors; match them with errors.Is.
var (
	// ErrTimeout matches every *TimeoutError.
	ErrTimeout = errors.New("httpclient: timeout")
	// ErrInvalidConfig wraps every configuration error New and SetConfig return.
	ErrInvalidConfig = errors.New("httpclient: invalid config")
	// ErrStreamTruncated matches a stream that ended (EOF) before
	// "data: [DONE]" or a finish_reason on every choice.
	ErrStreamTruncated = errors.New("httpclient: stream ended before its end")
	// ErrResponseTooLarge matches a response body over Config.MaxResponseBytes.
	ErrResponseTooLarge = errors.New("httpclient: response too large")
)

// tooLargeError is a response body that exceeded its limit.
type tooLargeError struct{ limit int64 }

func (e *tooLargeError) Error() string {
	return fmt.Sprintf("response larger than %d bytes (max_response_bytes)", e.limit)
}

// Is makes errors.Is(err, ErrResponseTooLarge) match.
func (e *tooLargeError) Is(target error) bool { return target == ErrResponseTooLarge }

// limitedReader reads at most limit bytes and fails with *tooLargeError on
// the first byte beyond.
type limitedReader struct {
	r     io.Reader
	limit int64
	n     int64
}

func (l *limitedReader) Read(b []byte) (int, error) {
	if rem := l.limit - l.n + 1; int64(len(b)) > rem {
		b = b[:rem] // read one byte past the limit to tell "exactly" from "over"
	}
	n, err := l.r.Read(b)
	l.n += int64(n)
	if l.n > l.limit {
		return n - int(l.n-l.limit), &tooLargeError{limit: l.limit}
	}
	return n, err
}

// truncatedError is a stream cut off before its end after events events.
type truncatedError struct{ events int }

func (e *truncatedError) Error() string {
	return fmt.Sprintf("stream ended after HTTP 200 and %d events without data: [DONE] or a finish_reason on every choice (cut off)", e.events)
}

// Is makes errors.Is(err, ErrStreamTruncated) match.
func (e *truncatedError) Is(target error) bool { return target == ErrStreamTruncated }

// TimeoutError says which phase of a call ran out of time. It is the cause
// the watchdog cancels an attempt with.
type TimeoutError struct {
	Phase Phase
	After time.Duration
}

func (e *TimeoutError) Error() string {
	switch e.Phase {
	case PhaseUpload:
		return fmt.Sprintf("request body upload made no progress for %s (timeouts.upload_stall)", e.After)
	case PhaseFirstByte:
		return fmt.Sprintf("no response headers or first event within %s (timeouts.first_byte)", e.After)
	case PhaseIdle:
		return fmt.Sprintf("response made no progress for %s (timeouts.idle)", e.After)
	case PhaseBody:
		return fmt.Sprintf("call did not finish within %s (timeouts.body)", e.After)
	}
	return fmt.Sprintf("timed out after %s", e.After)
}

// Is makes errors.Is(err, ErrTimeout) match.
func (e *TimeoutError) Is(target error) bool { return target == ErrTimeout }
