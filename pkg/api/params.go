package api

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/salvo-run/salvo/pkg/lifecycle"
)

// The request bodies. docs/schema/api.schema.json describes the same
// shapes; unknown fields are refused.

// CreateParams is the batch.create request body. Every field is optional.
type CreateParams struct {
	// ID names the batch; the service makes "batch_" + 24 hex digits when
	// it is empty. A retried create with the same id and contents returns
	// the stored batch.
	ID string `json:"id,omitempty"`
	// CompletionWindow is a duration such as "24h" (the default) or "1h";
	// the batch expires that long after its creation.
	CompletionWindow string `json:"completion_window,omitempty"`
	// Endpoint is the upstream path the batch's requests call, such as
	// "/v1/chat/completions" (informational).
	Endpoint string `json:"endpoint,omitempty"`
	// Metadata holds at most 16 pairs, keys up to 64 bytes, values up to
	// 512 bytes.
	Metadata map[string]string `json:"metadata,omitempty"`
	// Total is the number of requests; 0 leaves the batch open until a
	// batch.seal sets it.
	Total int64 `json:"total,omitempty"`
}

// newBatch validates p and builds the batch to create at now.
func (p *CreateParams) newBatch(now time.Time) (lifecycle.NewBatch, error) {
	id := p.ID
	if id == "" {
		id = newBatchID()
	} else if err := lifecycle.ValidateID("id", id); err != nil {
		return lifecycle.NewBatch{}, fieldError("id", err)
	}
	window := strings.TrimSpace(p.CompletionWindow)
	d, err := lifecycle.ParseCompletionWindow(window)
	if err != nil {
		return lifecycle.NewBatch{}, &Error{Code: CodeInvalidArgument, Message: err.Error(), Err: err}
	}
	if window == "" {
		window = "24h"
	}
	if p.Endpoint != "" {
		if err := lifecycle.ValidatePath(p.Endpoint); err != nil {
			return lifecycle.NewBatch{}, fieldError("endpoint", err)
		}
	}
	if err := validateMetadata(p.Metadata); err != nil {
		return lifecycle.NewBatch{}, err
	}
	if p.Total < 0 {
		return lifecycle.NewBatch{}, invalid("total", "%d must be at least 0 (0 leaves the batch open until batch.seal)", p.Total)
	}
	return lifecycle.NewBatch{
		ID:               id,
		CompletionWindow: window,
		Endpoint:         p.Endpoint,
		Metadata:         p.Metadata,
		CreatedAt:        now,
		ExpiresAt:        now.Add(d),
		Total:            p.Total,
	}, nil
}

// newBatchID makes "batch_" + 24 hex digits from crypto/rand.
func newBatchID() string {
	var b [12]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (it panics instead)
	return "batch_" + hex.EncodeToString(b[:])
}

// SealParams is the batch.seal request body.
type SealParams struct {
	ID string `json:"id"`
	// Total is the batch's final number of requests, at least 1 and at
	// least the number already seen.
	Total int64 `json:"total"`
}

func (p *SealParams) validate() error {
	if err := lifecycle.ValidateID("id", p.ID); err != nil {
		return fieldError("id", err)
	}
	if p.Total < 1 {
		return invalid("total", "%d must be at least 1", p.Total)
	}
	return nil
}

// BatchParams is the batch.get and batch.cancel request body.
type BatchParams struct {
	ID string `json:"id"`
}

func (p *BatchParams) validate() error {
	if err := lifecycle.ValidateID("id", p.ID); err != nil {
		return fieldError("id", err)
	}
	return nil
}

// ListParams is the batch.list request body. Every field is optional.
type ListParams struct {
	// After is the last_id of the previous page.
	After string `json:"after,omitempty"`
	// Limit is the page size, 1 to 100 (20 when absent).
	Limit *int `json:"limit,omitempty"`
	// Status keeps only batches in this status.
	Status string `json:"status,omitempty"`
	// Metadata keeps only batches whose metadata holds every pair.
	Metadata map[string]string `json:"metadata,omitempty"`
}

func (p *ListParams) query() (lifecycle.BatchQuery, error) {
	q := lifecycle.BatchQuery{After: p.After, Limit: lifecycle.DefaultBatchPage, Metadata: p.Metadata}
	if p.After != "" {
		if err := lifecycle.ValidateID("after", p.After); err != nil {
			return q, fieldError("after", err)
		}
	}
	if p.Limit != nil {
		if *p.Limit < 1 || *p.Limit > lifecycle.MaxBatchPage {
			return q, invalid("limit", "%d must be 1 to %d", *p.Limit, lifecycle.MaxBatchPage)
		}
		q.Limit = *p.Limit
	}
	if p.Status != "" {
		if s := lifecycle.BatchStatus(p.Status); !s.Valid() {
			return q, invalid("status", "%q is not one of %s", p.Status, statusList)
		}
		q.Status = lifecycle.BatchStatus(p.Status)
	}
	if err := validateMetadata(p.Metadata); err != nil {
		return q, err
	}
	return q, nil
}

var statusList = strings.Join([]string{
	string(lifecycle.BatchValidating), string(lifecycle.BatchInProgress), string(lifecycle.BatchFinalizing),
	string(lifecycle.BatchCompleted), string(lifecycle.BatchFailed), string(lifecycle.BatchExpired),
	string(lifecycle.BatchCancelling), string(lifecycle.BatchCancelled),
}, ", ")

// RequestParams is the request.get and request.cancel request body.
type RequestParams struct {
	ID string `json:"id"`
	// BatchID is the request's batch (empty for a batchless request).
	BatchID string `json:"batch_id,omitempty"`
}

func (p *RequestParams) ref() (lifecycle.Ref, error) {
	// A malformed message's record has a reserved id; it can be looked up.
	if !isMalformedID(p.ID) {
		if err := lifecycle.ValidateID("id", p.ID); err != nil {
			return lifecycle.Ref{}, fieldError("id", err)
		}
	}
	if p.BatchID != "" {
		if err := lifecycle.ValidateID("batch_id", p.BatchID); err != nil {
			return lifecycle.Ref{}, fieldError("batch_id", err)
		}
	}
	return lifecycle.Ref{ID: p.ID, BatchID: p.BatchID}, nil
}

// isMalformedID reports whether id is one lifecycle.MalformedID makes.
func isMalformedID(id string) bool {
	seq, ok := strings.CutPrefix(id, lifecycle.MalformedIDPrefix)
	if !ok || seq == "" || len(seq) > 20 {
		return false
	}
	return !strings.ContainsFunc(seq, func(r rune) bool { return r < '0' || r > '9' })
}

// validateMetadata checks batch metadata against OpenAI's limits.
func validateMetadata(m map[string]string) error {
	if len(m) > lifecycle.MaxMetadataPairs {
		return invalid("metadata", "%d pairs, at most %d", len(m), lifecycle.MaxMetadataPairs)
	}
	for _, k := range slices.Sorted(maps.Keys(m)) {
		switch {
		case k == "":
			return invalid("metadata", "keys must not be empty")
		case len(k) > lifecycle.MaxMetadataKey:
			return invalid("metadata", "key %s is %d bytes, at most %d", shorten(k), len(k), lifecycle.MaxMetadataKey)
		case len(m[k]) > lifecycle.MaxMetadataValue:
			return invalid("metadata."+k, "%d bytes, at most %d", len(m[k]), lifecycle.MaxMetadataValue)
		}
	}
	return nil
}

// shorten quotes s, cut to 32 bytes.
func shorten(s string) string {
	if len(s) > 32 {
		return fmt.Sprintf("%q...", s[:32])
	}
	return fmt.Sprintf("%q", s)
}
