package worker

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/salvo-run/salvo/pkg/httpclient"
	"github.com/salvo-run/salvo/pkg/lifecycle"
)

// buildResult makes the result line of a request that ends in state to.
func (w *Worker) buildResult(req *lifecycle.Request, to lifecycle.State, attempts int, started time.Time, f *lifecycle.Failure, resp *httpclient.Response) *lifecycle.Result {
	res := &lifecycle.Result{
		V:           lifecycle.WireVersion,
		ID:          req.ID,
		CustomID:    req.CustomID,
		BatchID:     req.BatchID,
		State:       to,
		Attempts:    attempts,
		Model:       req.Model,
		RoutedModel: req.Model,
		StartedAt:   started.UTC(),
		FinishedAt:  w.clock().UTC(),
	}
	if resp != nil {
		res.DurationMS = resp.Duration.Milliseconds()
		if resp.Status > 0 {
			res.Response = &lifecycle.ResultResponse{
				StatusCode: resp.Status,
				RequestID:  resp.RequestID,
				Body:       jsonBody(resp.Body),
			}
		}
	}
	if f != nil {
		res.Error = &lifecycle.ResultError{Code: f.Code, Message: f.Message}
		if res.Response == nil && f.Status != 0 {
			// Ended without a call of its own (a retry refused at the
			// deadline): keep the last attempt's status.
			res.Response = &lifecycle.ResultResponse{StatusCode: f.Status}
		}
	}
	return res
}

// jsonBody keeps a JSON body as is and wraps anything else (an HTML error
// page, plain text) as a JSON string, so the result line stays valid JSON.
func jsonBody(b []byte) json.RawMessage {
	if len(b) == 0 {
		return nil
	}
	if json.Valid(b) {
		return json.RawMessage(b)
	}
	s, _ := json.Marshal(string(b))
	return s
}

// encode encodes the result line kept in the outbox; a body too large for
// one message goes to the object store first.
func (w *Worker) encode(res *lifecycle.Result) ([]byte, error) {
	ctx, cancel := w.opCtx()
	defer cancel()
	data, err := w.queue.EncodeResult(ctx, res)
	if err != nil {
		return nil, fmt.Errorf("worker: encode result %s: %w", res.ID, err)
	}
	return data, nil
}

// encodeResult encodes a result line as is, for a result that has no
// upstream body to store.
func encodeResult(res *lifecycle.Result) ([]byte, error) {
	b, err := json.Marshal(res)
	if err != nil {
		return nil, fmt.Errorf("worker: encode result %s: %w", res.ID, err)
	}
	return b, nil
}

// resultFromEnded rebuilds the result of a request found terminal: the
// stored result line (returned encoded too) when the terminal move kept
// one, else a line built from the record (a request ended without an
// upstream answer).
func (w *Worker) resultFromEnded(req *lifecycle.Request, e *lifecycle.Ended) (*lifecycle.Result, []byte) {
	if len(e.Outbox) > 0 {
		var res lifecycle.Result
		// a racing copy's line is its original's: escalation_id names the copy
		if err := json.Unmarshal(e.Outbox, &res); err == nil && (res.ID == req.ID || res.EscalationID == req.ID) {
			return &res, e.Outbox
		}
		w.log.Warn().Str("request_id", req.ID).Msg("stored result line unreadable; rebuilding it from the record")
	}
	f := e.Failure
	if f == nil {
		f = endedFailure(e.State, nil)
	}
	res := w.buildResult(req, e.State, e.Attempts, time.Time{}, f, nil)
	if e.Status > 0 {
		res.Response = &lifecycle.ResultResponse{StatusCode: e.Status}
	}
	return res, nil
}

// endedFailure is the error of a request that ended without a failure of
// its own (cancelled batch, deadline).
func endedFailure(s lifecycle.State, f *lifecycle.Failure) *lifecycle.Failure {
	if f != nil {
		return f
	}
	switch s {
	case lifecycle.StateCanceled:
		return lifecycle.NewFailure(lifecycle.CodeBatchCanceled, 0, "the batch was cancelled")
	case lifecycle.StateExpired:
		return lifecycle.NewFailure(lifecycle.CodeBatchExpired, 0, "the request's deadline passed before it could run")
	case lifecycle.StateSuperseded:
		return lifecycle.NewFailure(lifecycle.CodeSuperseded, 0, "a racing copy of the request completed first")
	case lifecycle.StateCompleted:
		return nil
	default:
		return lifecycle.NewFailure(lifecycle.CodeTaskTerminated, 0, "the request ended in state %s", s)
	}
}
