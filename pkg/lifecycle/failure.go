package lifecycle

import (
	"errors"
	"fmt"
)

// FailureCode is the stable, machine-readable reason a request attempt failed.
// The values are part of the wire contract (result error.code) and of metric
// labels; never rename one.
type FailureCode string

const (
	// CodeRetriableStatus: the upstream answered a status the retry policy retries.
	CodeRetriableStatus FailureCode = "retriable_status"
	// CodeNonRetriableStatus: the upstream answered a status that fails at once.
	CodeNonRetriableStatus FailureCode = "non_retriable_status"
	// CodeNetworkError: DNS, connect, TLS or IO error that in-process retries did not cure.
	CodeNetworkError FailureCode = "network_error"
	// CodeTimeout: a call phase timed out (first byte, idle gap, body, upload stall).
	CodeTimeout FailureCode = "timeout"
	// CodeTaskTerminated: the attempt was cut off (worker shutdown or crash).
	CodeTaskTerminated FailureCode = "task_terminated"
	// CodeRequestBuild: the request could not be built (bad path, header, body).
	CodeRequestBuild FailureCode = "request_build_error"
	// CodeBatchCanceled: the batch was canceled before the request ran.
	CodeBatchCanceled FailureCode = "batch_cancelled"
	// CodeBatchExpired: the request's deadline passed before it could finish.
	CodeBatchExpired FailureCode = "batch_expired"
	// CodeUnroutedModel: no route in the worker's config serves the model.
	CodeUnroutedModel FailureCode = "unrouted_model"
	// CodeRequestCanceled: the single request was canceled.
	CodeRequestCanceled FailureCode = "request_cancelled"
	// CodeSuperseded: a racing copy of the request completed first.
	CodeSuperseded FailureCode = "superseded"
	// CodeMalformedMessage: the queued message is not a valid request.
	CodeMalformedMessage FailureCode = "malformed_message"
	// CodeMaxDeliveries: the message was delivered too many times (poison).
	CodeMaxDeliveries FailureCode = "max_deliveries_exceeded"
	// CodeBatchNotFound: the request names a batch that was not created
	// (within batches.unknown_hold of its publication).
	CodeBatchNotFound FailureCode = "batch_not_found"
	// CodeMessageLost: the request's message left the stream (purged by
	// hand, dropped by a stream limit) while no worker held it.
	CodeMessageLost FailureCode = "message_lost"
	// CodeRateLimitedDeadline: the request could not get its upstream
	// budget (rate limits, a fleet-wide hold) before its deadline; it was
	// never sent.
	CodeRateLimitedDeadline FailureCode = "rate_limited_deadline"
)

// FailureCodes lists every code.
var FailureCodes = []FailureCode{
	CodeRetriableStatus, CodeNonRetriableStatus, CodeNetworkError, CodeTimeout,
	CodeTaskTerminated, CodeRequestBuild, CodeBatchCanceled, CodeBatchExpired,
	CodeBatchNotFound, CodeMessageLost, CodeRateLimitedDeadline,
	CodeUnroutedModel, CodeRequestCanceled, CodeSuperseded, CodeMalformedMessage,
	CodeMaxDeliveries,
}

// Retriable reports whether a failure with this code may be tried again
// (subject to the retry policy's limits and the deadline).
func (c FailureCode) Retriable() bool {
	switch c {
	case CodeRetriableStatus, CodeNetworkError, CodeTimeout, CodeTaskTerminated:
		return true
	}
	return false
}

// Failure describes why an attempt or a request failed. Status is the HTTP
// status when the upstream answered (0 otherwise). Message never contains
// credentials.
type Failure struct {
	Code    FailureCode `json:"code"`
	Message string      `json:"message"`
	Status  int         `json:"status,omitempty"`
}

// Error implements error so a Failure can travel through error returns.
func (f *Failure) Error() string {
	if f.Status != 0 {
		return fmt.Sprintf("%s (status %d): %s", f.Code, f.Status, f.Message)
	}
	return fmt.Sprintf("%s: %s", f.Code, f.Message)
}

// Retriable reports whether the failure's code is retriable.
func (f *Failure) Retriable() bool { return f.Code.Retriable() }

// NewFailure builds a Failure.
func NewFailure(code FailureCode, status int, format string, args ...any) *Failure {
	return &Failure{Code: code, Status: status, Message: fmt.Sprintf(format, args...)}
}

// AsFailure extracts a *Failure from err's chain.
func AsFailure(err error) (*Failure, bool) {
	var f *Failure
	if errors.As(err, &f) {
		return f, true
	}
	return nil, false
}
