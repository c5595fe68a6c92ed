// Package mockupstream is an OpenAI-compatible HTTP server for tests, the
// demo and benchmarks. It listens on loopback and answers
//
//	POST /v1/chat/completions   (SSE when the body has "stream": true)
//	POST /v1/completions        (SSE when the body has "stream": true)
//	POST /v1/embeddings
//
// with realistic bodies (id, object, created, model, choices, usage) that
// echo the request id (X-Salvo-Request-Id, else X-Request-Id) and the model.
// The streamed and the non-streamed answer to the same request carry the
// same completion, so a client's SSE reassembly can be compared with the
// plain response.
//
// Behaviour is scripted (Script) at three levels, the most specific set
// field winning: Options.Script for every call, Options.Models per model,
// Server.Script per request id. A Script sets
//
//   - Latency: fixed (Min) or uniform in [Min, Max] before answering;
//   - Failures: a seeded mix of 429 (with Retry-After), 500, 503 and
//     connection resets before the status line (StatusReset);
//   - Sequence: the statuses of each request id's first calls in order, e.g.
//     []int{499, 503, 200}; StatusReset resets the connection;
//   - Stall: pauses at each phase: not reading the upload (UploadDelay) or
//     reading it slowly (UploadReadChunk/UploadReadInterval), before the
//     status line (BeforeHeaders), before the first SSE event
//     (BeforeFirstEvent), an idle gap after the first event (MidStream), and
//     a slow-drip body (DripInterval/DripChunk);
//   - StreamErrorAfter/StreamErrorCode: an {"error":…} event inside a 200 stream.
//
// Counters: Calls, CallsFor(requestID), Concurrent(model), MaxConcurrent(model),
// and with Options.Record the headers and bodies of every call (Received).
// Options.OnRequest runs when a request has arrived, before it is answered.
//
// Every stall also ends when the client goes away or the server closes, so
// Close returns promptly. cmd/mockupstream runs the server as a process.
package mockupstream
