package api

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/salvo-run/salvo/pkg/lifecycle"
)

// Error codes: the micro error code of an error reply (header
// Nats-Service-Error-Code) and error.code of its body.
const (
	// CodeInvalidArgument: the request is malformed or a field is wrong;
	// the message names the field. Do not retry it unchanged.
	CodeInvalidArgument = "invalid_argument"
	// CodeNotFound: no batch or request has the id.
	CodeNotFound = "not_found"
	// CodeConflict: a batch with the id exists with other contents, or is
	// sealed with another total; the message names the field.
	CodeConflict = "conflict"
	// CodeUnavailable: Redis did not answer in time or the service is
	// stopping. Retry with backoff; every endpoint is safe to retry.
	CodeUnavailable = "unavailable"
	// CodeInternal: a bug; the service logs the cause.
	CodeInternal = "internal"
)

// ErrStopped is the cause the service's background work is cancelled with
// when it stops.
var ErrStopped = errors.New("api: service stopped")

// ErrorReply is an error reply's body: {"error":{"code","message"}}.
type ErrorReply struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail is the error of an error reply. Message starts with the
// field it is about ("metadata: 17 pairs, at most 16") where there is one.
type ErrorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Error is an API error: what an error reply says. Handlers return it for
// the problems they find; store errors are translated into it at the
// boundary (reply).
type Error struct {
	Code    string
	Message string
	// Err is the cause, logged, never sent.
	Err error
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// invalid is an invalid_argument error about field.
func invalid(field, format string, args ...any) *Error {
	return &Error{Code: CodeInvalidArgument, Message: field + ": " + fmt.Sprintf(format, args...)}
}

// fieldError turns a *lifecycle.FieldError (or any error naming its field)
// into invalid_argument. field renames the FieldError's field: lifecycle
// names a path "url", the API's field is "endpoint".
func fieldError(field string, err error) *Error {
	var fe *lifecycle.FieldError
	if errors.As(err, &fe) {
		if field == "" {
			field = fe.Field
		}
		return &Error{Code: CodeInvalidArgument, Message: field + ": " + fe.Reason, Err: err}
	}
	return &Error{Code: CodeInvalidArgument, Message: err.Error(), Err: err}
}

// translate maps an error of a handler or of the store to the API error it
// answers with. notFound is what a lifecycle.ErrNotFound means in this call
// ("id: batch \"b1\" not found").
func translate(err error, notFound string) *Error {
	var ae *Error
	if errors.As(err, &ae) {
		return ae
	}
	var ce *lifecycle.ConflictError
	switch {
	case errors.As(err, &ce):
		return &Error{Code: CodeConflict, Err: err,
			Message: fmt.Sprintf("%s: batch %q exists with %s %s, not %s", ce.Field, ce.BatchID, ce.Field, ce.Stored, ce.Given)}
	case errors.Is(err, lifecycle.ErrBatchConflict):
		return &Error{Code: CodeConflict, Message: storeMessage(err, lifecycle.ErrBatchConflict), Err: err}
	case errors.Is(err, lifecycle.ErrInvalidBatch):
		var fe *lifecycle.FieldError
		if errors.As(err, &fe) {
			return fieldError("", fe)
		}
		return &Error{Code: CodeInvalidArgument, Message: storeMessage(err, lifecycle.ErrInvalidBatch), Err: err}
	case errors.Is(err, lifecycle.ErrNotFound):
		return &Error{Code: CodeNotFound, Message: notFound, Err: err}
	case errors.Is(err, lifecycle.ErrUnavailable),
		errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, context.Canceled):
		return &Error{Code: CodeUnavailable, Message: "the batch store did not answer in time; retry", Err: err}
	}
	return &Error{Code: CodeInternal, Message: "internal error", Err: err}
}

// storeMessage is the store's error text for the user: the part after the
// sentinel's own text ("state: invalid batch: total: 3 is fewer than the 5
// requests seen" → "total: 3 is fewer than the 5 requests seen"), which
// names the field by the store's contract. Formatting only; callers branch
// with errors.Is before.
func storeMessage(err, sentinel error) string {
	msg := err.Error()
	if i := strings.Index(msg, sentinel.Error()+": "); i >= 0 {
		return msg[i+len(sentinel.Error())+2:]
	}
	return msg
}
