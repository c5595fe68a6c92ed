// Package client is the Go client of salvo's batch API: request/reply over
// NATS to the micro service every worker serves (pkg/api), with nothing but
// a NATS connection. The producer CLI uses it; any other language speaks
// the same JSON (docs/PROTOCOL.md, section 11).
package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/salvo-run/salvo/pkg/api"
	"github.com/salvo-run/salvo/pkg/lifecycle"
)

// TimeoutDefault bounds one call when the context has no deadline.
const TimeoutDefault = 10 * time.Second

// ErrNoService: no batch API answers on the subject (no worker runs, or it
// runs with another prefix). The error names the subject.
var ErrNoService = errors.New("no batch service answers")

// Error is an error the batch API answered with.
type Error struct {
	// Code is one of api.CodeInvalidArgument, CodeNotFound, CodeConflict,
	// CodeUnavailable, CodeInternal.
	Code    string
	Message string
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// IsCode reports whether err is an *Error with code.
func IsCode(err error, code string) bool {
	var e *Error
	return errors.As(err, &e) && e.Code == code
}

// Client calls the batch API of one deployment (its subject prefix).
type Client struct {
	nc     *nats.Conn
	prefix string
}

// New returns a client over nc for the deployment with subject prefix
// prefix ("" for lifecycle.PrefixDefault).
func New(nc *nats.Conn, prefix string) *Client {
	if prefix == "" {
		prefix = lifecycle.PrefixDefault
	}
	return &Client{nc: nc, prefix: prefix}
}

// Prefix is the deployment's subject prefix.
func (c *Client) Prefix() string { return c.prefix }

// call sends params to endpoint and decodes the reply into out.
func (c *Client) call(ctx context.Context, endpoint string, params, out any) error {
	subj := api.Subject(c.prefix, endpoint)
	data, err := json.Marshal(params)
	if err != nil {
		return fmt.Errorf("%s: encode: %w", endpoint, err)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, TimeoutDefault)
		defer cancel()
	}
	m, err := c.nc.RequestWithContext(ctx, subj, data)
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		return fmt.Errorf("%w on %s: is a salvo worker running with prefix %q?", ErrNoService, subj, c.prefix)
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%s: no reply on %s in time: %w", endpoint, subj, err)
	case err != nil:
		return fmt.Errorf("%s: %w", endpoint, err)
	}
	if code := m.Header.Get("Nats-Service-Error-Code"); code != "" {
		var rep api.ErrorReply
		if json.Unmarshal(m.Data, &rep) == nil && rep.Error.Code != "" {
			return &Error{Code: rep.Error.Code, Message: rep.Error.Message}
		}
		return &Error{Code: code, Message: m.Header.Get("Nats-Service-Error")}
	}
	if err := json.Unmarshal(m.Data, out); err != nil {
		return fmt.Errorf("%s: decode reply: %w", endpoint, err)
	}
	return nil
}

// CreateBatch creates a batch, or returns the existing one with the same id
// and contents (a conflict names the field that differs).
func (c *Client) CreateBatch(ctx context.Context, p api.CreateParams) (api.BatchObject, error) {
	var b api.BatchObject
	return b, c.call(ctx, api.EndpointBatchCreate, p, &b)
}

// SealBatch fixes the total of an open batch.
func (c *Client) SealBatch(ctx context.Context, id string, total int64) (api.BatchObject, error) {
	var b api.BatchObject
	return b, c.call(ctx, api.EndpointBatchSeal, api.SealParams{ID: id, Total: total}, &b)
}

// Batch reads a batch.
func (c *Client) Batch(ctx context.Context, id string) (api.BatchObject, error) {
	var b api.BatchObject
	return b, c.call(ctx, api.EndpointBatchGet, api.BatchParams{ID: id}, &b)
}

// CancelBatch cancels a batch and returns it (cancelling, or final).
func (c *Client) CancelBatch(ctx context.Context, id string) (api.BatchObject, error) {
	var b api.BatchObject
	return b, c.call(ctx, api.EndpointBatchCancel, api.BatchParams{ID: id}, &b)
}

// ListBatches returns a page of batches, newest first.
func (c *Client) ListBatches(ctx context.Context, p api.ListParams) (api.BatchList, error) {
	var l api.BatchList
	return l, c.call(ctx, api.EndpointBatchList, p, &l)
}

// Request reads one request's record.
func (c *Client) Request(ctx context.Context, batchID, id string) (api.RequestObject, error) {
	var r api.RequestObject
	return r, c.call(ctx, api.EndpointRequestGet, api.RequestParams{ID: id, BatchID: batchID}, &r)
}

// CancelRequest cancels one request.
func (c *Client) CancelRequest(ctx context.Context, batchID, id string) (api.RequestObject, error) {
	var r api.RequestObject
	return r, c.call(ctx, api.EndpointRequestCancel, api.RequestParams{ID: id, BatchID: batchID}, &r)
}
