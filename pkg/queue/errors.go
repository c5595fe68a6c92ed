package queue

import (
	"errors"
	"fmt"
	"strings"
)

// Sentinel errors; callers branch with errors.Is.
var (
	// ErrInvalidConfig wraps every Config.Validate error.
	ErrInvalidConfig = errors.New("queue: invalid config")
	// ErrIncompatible means an existing stream or consumer has a setting
	// that cannot be changed in place; see *IncompatibleError.
	ErrIncompatible = errors.New("queue: incompatible existing configuration")
	// ErrSettingsDiffer means an existing stream, object store or consumer
	// has settings other than this worker's, which Provision does not
	// change; see *DiffError and Client.ApplySettings.
	ErrSettingsDiffer = errors.New("queue: server settings differ from this worker's")
	// ErrServerTooOld means the NATS server lacks a feature salvo needs.
	ErrServerTooOld = errors.New("queue: nats-server too old")
	// ErrInvalidRequest wraps a request that fails validation before publishing.
	ErrInvalidRequest = errors.New("queue: invalid request")
	// ErrInvalidSubject means a result subject is not a publishable subject.
	ErrInvalidSubject = errors.New("queue: invalid subject")
	// ErrPublish wraps a failed publish; see *PublishError for the ids.
	ErrPublish = errors.New("queue: publish failed")
	// ErrStreamFull means the REQUESTS stream is at its message or byte
	// limit and refused a publish; see *StreamFullError.
	ErrStreamFull = errors.New("queue: stream full")
	// ErrStopped is returned by operations on a stopped publisher or consumer.
	ErrStopped = errors.New("queue: stopped")
	// ErrUnhealthy wraps every Consumer.Healthy error.
	ErrUnhealthy = errors.New("queue: unhealthy")
)

// IncompatibleError names the setting of an existing stream that Provision
// cannot update and what would fix it.
type IncompatibleError struct {
	Stream string
	Field  string
	Have   string
	Want   string
}

func (e *IncompatibleError) Error() string {
	return fmt.Sprintf("queue: stream %s: %s is %s, salvo needs %s; it cannot be changed in place: "+
		"migrate or delete the stream (nats stream rm %s) and provision again",
		e.Stream, e.Field, e.Have, e.Want, e.Stream)
}

// Unwrap makes errors.Is(err, ErrIncompatible) true.
func (e *IncompatibleError) Unwrap() error { return ErrIncompatible }

// PublishError lists the request ids whose publish failed, with the cause
// of each.
type PublishError struct {
	Failed map[string]error
}

func (e *PublishError) Error() string {
	ids := make([]string, 0, len(e.Failed))
	for id := range e.Failed {
		ids = append(ids, id)
	}
	const show = 10
	var b strings.Builder
	fmt.Fprintf(&b, "queue: %d request(s) not published:", len(ids))
	for i, id := range ids {
		if i == show {
			fmt.Fprintf(&b, " … and %d more", len(ids)-show)
			break
		}
		fmt.Fprintf(&b, " %s (%v)", id, e.Failed[id])
	}
	return b.String()
}

// Unwrap makes errors.Is(err, ErrPublish) true, and errors.Is/As true for
// each id's cause (errors.Is(err, ErrStreamFull) when the stream was full).
func (e *PublishError) Unwrap() []error {
	errs := make([]error, 0, len(e.Failed)+1)
	errs = append(errs, ErrPublish)
	for _, err := range e.Failed {
		errs = append(errs, err)
	}
	return errs
}

// StreamFullError is a publish the stream refused because it is at one of
// its limits (discard new): the message was not stored, and nothing the
// stream holds was dropped to make room.
type StreamFullError struct {
	// Stream is the stream's name (<P>_REQUESTS).
	Stream string
	// Limit is the limit reached: max_msgs or max_bytes.
	Limit string
	// Max is the limit's configured value.
	Max int64
	// Key is the Config key that sets it (requests_max_msgs, …).
	Key string
	// Err is the server's answer.
	Err error
}

func (e *StreamFullError) Error() string {
	return fmt.Sprintf("queue: %s is full (%s %d, setting %s): %v", e.Stream, e.Limit, e.Max, e.Key, e.Err)
}

// Unwrap makes errors.Is(err, ErrStreamFull) true and keeps the server's
// error reachable.
func (e *StreamFullError) Unwrap() []error { return []error{ErrStreamFull, e.Err} }
