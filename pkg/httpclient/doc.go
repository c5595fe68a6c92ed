// Package httpclient executes one upstream HTTP call per request attempt: it
// routes the request's path to the base URL and credentials configured for
// its model, sends salvo's stable identity headers, enforces a timeout for
// every phase of the call (connect, upload stall, first byte or first SSE
// event, idle gap, whole body), reassembles SSE streams into the JSON a
// non-streaming call would have returned, and retries transport errors that
// happen before a status line in-process with jittered exponential backoff.
//
// Outcomes are classified into lifecycle failures (retriable status,
// non-retriable status, network error, timeout, request build error,
// unrouted model, task terminated); the caller decides what the lifecycle
// does with them. Credentials never appear in logs, errors or responses: the
// Secret type redacts itself wherever it is printed or marshaled.
//
// Phases and their timeouts (Timeouts):
//
//	dial + TLS            Connect      a connect error (timeout included):
//	                                   retried in-process, then network_error
//	request body written  UploadStall  no body progress for that long
//	request written →     FirstByte    response headers (non-streaming) or
//	                                   the first SSE event (streaming)
//	after the first byte  Idle         gap between body reads / SSE events
//	whole attempt         Body         one attempt, from its start (before
//	                                   the dial) to the last body byte
//
// A response body is read through Config.MaxResponseBytes; a larger one
// fails as non_retriable_status (the same request would get it again). A
// chat-completion or completion stream that ends without "data: [DONE]" or
// a finish_reason on every choice was cut off: a network_error, never a
// success with the partial text; an unterminated last event is dropped.
//
// Only errors before a status line are retried in-process (Config.
// TransportRetries times, delay TransportBackoffDelay): DNS, connect and TLS
// errors, dial and TLS-handshake timeouts alike, and IO errors; not the
// phase timeouts above after Connect, cancellations or certificate
// problems (configuration that recurs). Retries exhausted end as
// network_error. Any HTTP status passes through at once.
package httpclient
