package api

import (
	"time"

	"github.com/salvo-run/salvo/pkg/lifecycle"
)

// The reply bodies, shaped like OpenAI's batch API. Times are unix seconds,
// null until reached; optional strings are null when unset. The JSON
// Schemas in docs/schema/api.schema.json describe the same shapes.

// BatchObject is the batch.* replies' body (object "batch").
type BatchObject struct {
	ID               string  `json:"id"`
	Object           string  `json:"object"`
	Endpoint         *string `json:"endpoint"`
	CompletionWindow string  `json:"completion_window"`
	Status           string  `json:"status"`
	CreatedAt        *int64  `json:"created_at"`
	BatchTimes
	RequestCounts RequestCounts     `json:"request_counts"`
	Metadata      map[string]string `json:"metadata"`
	Salvo         BatchDetail       `json:"salvo"`
}

// BatchTimes are the OpenAI batch object's timestamps after created_at,
// unix seconds, null until the batch gets there. The gateway's batch
// object embeds them too.
type BatchTimes struct {
	InProgressAt *int64 `json:"in_progress_at"`
	ExpiresAt    *int64 `json:"expires_at"`
	FinalizingAt *int64 `json:"finalizing_at"`
	CompletedAt  *int64 `json:"completed_at"`
	FailedAt     *int64 `json:"failed_at"`
	ExpiredAt    *int64 `json:"expired_at"`
	CancellingAt *int64 `json:"cancelling_at"`
	CancelledAt  *int64 `json:"cancelled_at"`
}

// RequestCounts are OpenAI's three counters. Failed counts every request
// that ended without a response worth keeping (failed, expired,
// canceled); Completed includes superseded requests (a superseded
// request's result is its racing copy's completed line).
type RequestCounts struct {
	Total     int64 `json:"total"`
	Completed int64 `json:"completed"`
	Failed    int64 `json:"failed"`
}

// BatchDetail is what salvo adds to the OpenAI batch object.
type BatchDetail struct {
	// Sealed reports that request_counts.total is final.
	Sealed           bool             `json:"sealed"`
	Counts           lifecycle.Counts `json:"counts"`
	ResultsPublished int64            `json:"results_published"`
	ResultsMissing   int64            `json:"results_missing"`
	// Escalating counts racing copies (escalation) not ended yet.
	Escalating int64 `json:"escalating,omitempty"`
}

// NewBatchObject shapes a stored batch as the API shows it.
func NewBatchObject(b lifecycle.Batch) BatchObject {
	var meta map[string]string
	if len(b.Metadata) > 0 {
		meta = b.Metadata
	}
	c := b.Counts
	return BatchObject{
		ID:               b.ID,
		Object:           "batch",
		Endpoint:         optString(b.Endpoint),
		CompletionWindow: b.CompletionWindow,
		Status:           string(b.Status),
		CreatedAt:        unix(b.CreatedAt),
		BatchTimes: BatchTimes{
			InProgressAt: unix(b.InProgressAt),
			ExpiresAt:    unix(b.ExpiresAt),
			FinalizingAt: unix(b.FinalizingAt),
			CompletedAt:  unix(b.CompletedAt),
			FailedAt:     unix(b.FailedAt),
			ExpiredAt:    unix(b.ExpiredAt),
			CancellingAt: unix(b.CancellingAt),
			CancelledAt:  unix(b.CancelledAt),
		},
		RequestCounts: RequestCounts{
			Total: c.Total,
			// a superseded request's answer is its racing copy's completed line
			Completed: c.Completed + c.Superseded,
			Failed:    c.Failed + c.Expired + c.Canceled,
		},
		Metadata: meta,
		Salvo: BatchDetail{
			Sealed:           b.Sealed,
			Counts:           c,
			ResultsPublished: b.ResultsPublished,
			ResultsMissing:   b.ResultsMissing,
			Escalating:       b.Escalating,
		},
	}
}

// BatchList is the batch.list reply's body (object "list"), newest first.
// FirstID and LastID are null on an empty page; pass LastID as "after" to
// read the next page while HasMore.
type BatchList struct {
	Object  string        `json:"object"`
	Data    []BatchObject `json:"data"`
	FirstID *string       `json:"first_id"`
	LastID  *string       `json:"last_id"`
	HasMore bool          `json:"has_more"`
}

// NewBatchList shapes a page of batches as the API shows it.
func NewBatchList(p lifecycle.BatchPage) BatchList {
	l := BatchList{Object: "list", Data: make([]BatchObject, 0, len(p.Batches)), HasMore: p.HasMore}
	for _, b := range p.Batches {
		l.Data = append(l.Data, NewBatchObject(b))
	}
	if n := len(p.Batches); n > 0 {
		l.FirstID = &p.Batches[0].ID
		l.LastID = &p.Batches[n-1].ID
	}
	return l
}

// RequestObject is the request.* replies' body (object "batch.request").
type RequestObject struct {
	ID              string        `json:"id"`
	Object          string        `json:"object"`
	BatchID         *string       `json:"batch_id"`
	CustomID        *string       `json:"custom_id"`
	Model           string        `json:"model"`
	RoutedModel     *string       `json:"routed_model"`
	State           string        `json:"state"`
	Attempts        int           `json:"attempts"`
	StatusCode      *int          `json:"status_code"`
	Error           *RequestError `json:"error"`
	ResultPublished bool          `json:"result_published"`
	CreatedAt       *int64        `json:"created_at"`
	ClaimedAt       *int64        `json:"claimed_at"`
	StartedAt       *int64        `json:"started_at"`
	FinishedAt      *int64        `json:"finished_at"`
	UpdatedAt       *int64        `json:"updated_at"`
}

// RequestError is a request's last failure.
type RequestError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// NewRequestObject shapes a stored request record as the API shows it.
func NewRequestObject(r lifecycle.Record) RequestObject {
	o := RequestObject{
		ID:              r.Ref.ID,
		Object:          "batch.request",
		BatchID:         optString(r.Ref.BatchID),
		CustomID:        optString(r.CustomID),
		Model:           r.Model,
		RoutedModel:     optString(r.RoutedModel),
		State:           string(r.State),
		Attempts:        r.Attempt,
		ResultPublished: r.Published,
		CreatedAt:       unix(r.CreatedAt),
		ClaimedAt:       unix(r.ClaimedAt),
		StartedAt:       unix(r.StartedAt),
		FinishedAt:      unix(r.FinishedAt),
		UpdatedAt:       unix(r.UpdatedAt),
	}
	if r.Status != 0 {
		o.StatusCode = &r.Status
	}
	if r.Failure != nil {
		o.Error = &RequestError{Code: string(r.Failure.Code), Message: r.Failure.Message}
	}
	return o
}

func unix(t time.Time) *int64 {
	if t.IsZero() {
		return nil
	}
	s := t.Unix()
	return &s
}

func optString(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}
