package httpclient

import (
	"errors"
	"fmt"
	"time"
)

// Sentinel errors; match them with errors.Is.
var (
	// ErrTimeout matches every *TimeoutError.
	ErrTimeout = errors.New("httpclient: timeout")
	// ErrInvalidConfig wraps every configuration error New and SetConfig return.
	ErrInvalidConfig = errors.New("httpclient: invalid config")
)

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
