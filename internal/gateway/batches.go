package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/salvo-run/salvo/pkg/api"
	"github.com/salvo-run/salvo/pkg/client"
	"github.com/salvo-run/salvo/pkg/lifecycle"
)

// batchRecord is what the gateway keeps of a batch in <P>_GATEWAY, next
// to salvo's own batch (the counts and times, through the batch API).
type batchRecord struct {
	ID               string            `json:"id"`
	Tenant           string            `json:"tenant"`
	InputFileID      string            `json:"input_file_id"`
	Endpoint         string            `json:"endpoint"`
	CompletionWindow string            `json:"completion_window"`
	CreatedAt        int64             `json:"created_at"`
	Metadata         map[string]string `json:"metadata,omitempty"`
	// Validated: the file was checked and its requests published (the
	// salvo batch is sealed). Failed: the file was refused (Errors).
	Validated bool        `json:"validated,omitempty"`
	Failed    bool        `json:"failed,omitempty"`
	FailedAt  int64       `json:"failed_at,omitempty"`
	Errors    []lineError `json:"errors,omitempty"`
	// ErrorsTotal counts every refused line (Errors keeps the first
	// maxErrors).
	ErrorsTotal int `json:"errors_total,omitempty"`
	// Built: the output and error files were written (ids empty when a
	// file would have no line).
	Built        bool   `json:"built,omitempty"`
	OutputFileID string `json:"output_file_id,omitempty"`
	ErrorFileID  string `json:"error_file_id,omitempty"`
	Usage        *usage `json:"usage,omitempty"`
	// OutputTTL is output_expires_after's seconds (0: the store's bound).
	OutputTTL int64 `json:"output_ttl,omitempty"`
	// LeaseUntil (unix ms) marks validation or file building under way in
	// some gateway; after it another gateway takes the work over.
	LeaseUntil int64 `json:"lease_until,omitempty"`
	// LeaseOwner is the holding of the lease: a gateway instance and a
	// number of its own (holdLease).
	LeaseOwner string `json:"lease_owner,omitempty"`
}

// lineError is one entry of a batch's errors.data, as OpenAI's.
type lineError struct {
	Code    string  `json:"code"`
	Line    *int    `json:"line"`
	Message string  `json:"message"`
	Param   *string `json:"param"`
}

// usage is OpenAI's batch usage, summed from the responses.
type usage struct {
	InputTokens        int64 `json:"input_tokens"`
	InputTokensDetails struct {
		CachedTokens int64 `json:"cached_tokens"`
	} `json:"input_tokens_details"`
	OutputTokens        int64 `json:"output_tokens"`
	OutputTokensDetails struct {
		ReasoningTokens int64 `json:"reasoning_tokens"`
	} `json:"output_tokens_details"`
	TotalTokens int64 `json:"total_tokens"`
}

// batchObject is OpenAI's batch object.
type batchObject struct {
	ID               string     `json:"id"`
	Object           string     `json:"object"`
	Endpoint         string     `json:"endpoint"`
	Errors           *errorList `json:"errors"`
	InputFileID      string     `json:"input_file_id"`
	CompletionWindow string     `json:"completion_window"`
	Status           string     `json:"status"`
	OutputFileID     *string    `json:"output_file_id"`
	ErrorFileID      *string    `json:"error_file_id"`
	CreatedAt        int64      `json:"created_at"`
	api.BatchTimes
	RequestCounts         api.RequestCounts `json:"request_counts"`
	Metadata              map[string]string `json:"metadata"`
	Usage                 *usage            `json:"usage,omitempty"`
	EstimatedCompletionAt *int64            `json:"estimated_completion_at,omitempty"`
}

type errorList struct {
	Object string      `json:"object"`
	Data   []lineError `json:"data"`
}

// maxErrors bounds the line errors a refused batch keeps.
const maxErrors = 1000

// leaseFor is how long a gateway holds a batch's validation or file
// building before another may take it over.
const leaseFor = time.Minute

func recordKey(t tenant, id string) string { return t.ns + "." + id }

// createParams is the body of POST /v1/batches.
type createParams struct {
	InputFileID        string            `json:"input_file_id"`
	Endpoint           string            `json:"endpoint"`
	CompletionWindow   string            `json:"completion_window"`
	Metadata           map[string]string `json:"metadata"`
	OutputExpiresAfter *struct {
		Anchor  string `json:"anchor"`
		Seconds int64  `json:"seconds"`
	} `json:"output_expires_after"`
}

// createBatch is POST /v1/batches: the batch is created in salvo (open:
// its total is set once the file is checked) and answered validating; the
// file is checked and its requests published in the background.
func (s *Server) createBatch(w http.ResponseWriter, r *http.Request, t tenant) {
	var p createParams
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxJSONBody))
	if err := dec.Decode(&p); err != nil {
		var tooLarge *http.MaxBytesError
		var typeErr *json.UnmarshalTypeError
		switch {
		case errors.As(err, &tooLarge):
			writeError(w, http.StatusRequestEntityTooLarge, errInvalid, "", fmt.Sprintf("the body is larger than %d bytes", maxJSONBody))
		case errors.As(err, &typeErr):
			writeError(w, http.StatusBadRequest, errInvalid, typeErr.Field,
				fmt.Sprintf("%s: a JSON %s where %s is expected", typeErr.Field, typeErr.Value, typeErr.Type))
		default:
			writeError(w, http.StatusBadRequest, errInvalid, "", "the body must be a JSON object: "+err.Error())
		}
		return
	}
	switch {
	case p.InputFileID == "":
		writeError(w, http.StatusBadRequest, errInvalid, "input_file_id", "input_file_id is required")
		return
	case !slices.Contains(Endpoints, p.Endpoint):
		writeError(w, http.StatusBadRequest, errInvalid, "endpoint",
			fmt.Sprintf("%q is not a batch endpoint: one of %s", p.Endpoint, strings.Join(Endpoints, ", ")))
		return
	case p.OutputExpiresAfter != nil && (p.OutputExpiresAfter.Anchor != "created_at" ||
		p.OutputExpiresAfter.Seconds < 3600 || p.OutputExpiresAfter.Seconds > int64(s.cfg.FileTTL/time.Second)):
		writeError(w, http.StatusBadRequest, errInvalid, "output_expires_after",
			fmt.Sprintf("output_expires_after: anchor 'created_at' and 3600 to %d seconds", int64(s.cfg.FileTTL/time.Second)))
		return
	case !slices.Contains(s.cfg.Windows, p.CompletionWindow):
		writeError(w, http.StatusBadRequest, errInvalid, "completion_window",
			fmt.Sprintf("%q is not an accepted completion window: one of %s", p.CompletionWindow, strings.Join(s.cfg.Windows, ", ")))
		return
	}
	f, ok, err := s.file(r.Context(), t, p.InputFileID)
	switch {
	case err != nil:
		s.serverError(w, "reading the input file", err)
		return
	case !ok:
		writeError(w, http.StatusNotFound, errNotFound, "input_file_id", fmt.Sprintf("No such File object: %s", p.InputFileID))
		return
	case f.Purpose != purposeBatch:
		writeError(w, http.StatusBadRequest, errInvalid, "input_file_id", fmt.Sprintf("%s has purpose %q, not 'batch'", f.ID, f.Purpose))
		return
	}
	id := newID("batch_")
	b, err := s.api.CreateBatch(r.Context(), api.CreateParams{ID: id, CompletionWindow: p.CompletionWindow,
		Endpoint: p.Endpoint, Metadata: p.Metadata})
	var apiErr *client.Error
	switch {
	case errors.As(err, &apiErr) && apiErr.Code == api.CodeInvalidArgument:
		param, _, _ := strings.Cut(apiErr.Message, ":")
		writeError(w, http.StatusBadRequest, errInvalid, param, apiErr.Message)
		return
	case err != nil:
		s.serverError(w, "creating the batch", err)
		return
	}
	rec := batchRecord{ID: id, Tenant: t.ns, InputFileID: p.InputFileID, Endpoint: p.Endpoint,
		CompletionWindow: p.CompletionWindow, CreatedAt: deref(b.CreatedAt), Metadata: p.Metadata,
		LeaseUntil: time.Now().Add(leaseFor).UnixMilli()}
	if p.OutputExpiresAfter != nil {
		rec.OutputTTL = p.OutputExpiresAfter.Seconds
	}
	data, _ := json.Marshal(rec)
	if _, err := s.kv.Create(r.Context(), recordKey(t, id), data); err != nil {
		s.serverError(w, "recording the batch", err)
		return
	}
	s.goValidate(t, rec)
	writeJSON(w, http.StatusOK, s.object(rec, b))
}

// record reads a tenant's batch record with its revision; ok is false when
// the tenant has no such batch.
func (s *Server) record(ctx context.Context, t tenant, id string) (batchRecord, uint64, bool, error) {
	e, err := s.kv.Get(ctx, recordKey(t, id))
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrInvalidKey) {
		return batchRecord{}, 0, false, nil
	}
	if err != nil {
		return batchRecord{}, 0, false, err
	}
	var rec batchRecord
	if err := json.Unmarshal(e.Value(), &rec); err != nil {
		return batchRecord{}, 0, false, fmt.Errorf("batch record %s: %w", id, err)
	}
	return rec, e.Revision(), true, nil
}

// update rewrites a batch record with change applied, retrying on a
// concurrent write.
func (s *Server) update(ctx context.Context, t tenant, id string, change func(*batchRecord) bool) (batchRecord, error) {
	for range 10 {
		rec, rev, ok, err := s.record(ctx, t, id)
		if err != nil {
			return rec, err
		}
		if !ok {
			return rec, fmt.Errorf("batch record %s: gone", id)
		}
		if !change(&rec) {
			return rec, nil
		}
		data, _ := json.Marshal(rec)
		_, err = s.kv.Update(ctx, recordKey(t, id), data, rev)
		if err == nil {
			return rec, nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) {
			return rec, err
		}
	}
	return batchRecord{}, fmt.Errorf("batch record %s: too many concurrent updates", id)
}

func (s *Server) getBatch(w http.ResponseWriter, r *http.Request, t tenant) {
	obj, ok, err := s.batch(r.Context(), t, r.PathValue("id"))
	switch {
	case err != nil:
		s.serverError(w, "reading the batch", err)
	case !ok:
		writeError(w, http.StatusNotFound, errNotFound, "id", fmt.Sprintf("No such Batch object: %s", r.PathValue("id")))
	default:
		writeJSON(w, http.StatusOK, obj)
	}
}

// batch reads a tenant's batch, taking over work a gateway left behind:
// a validation whose lease ran out, or the output files of a batch that
// ended.
func (s *Server) batch(ctx context.Context, t tenant, id string) (batchObject, bool, error) {
	rec, _, ok, err := s.record(ctx, t, id)
	if err != nil || !ok {
		return batchObject{}, ok, err
	}
	b, err := s.api.Batch(ctx, id)
	if err != nil {
		return batchObject{}, false, err
	}
	rec = s.fresh(ctx, t, rec, b)
	s.resume(t, rec, b)
	return s.object(rec, b), true, nil
}

// fresh re-reads a record read before salvo's batch b when b says the
// batch stopped while the record says it is still validating: a refused
// file is recorded failed just before its salvo batch is cancelled, and
// the record read first would show that cancel as the batch's status.
func (s *Server) fresh(ctx context.Context, t tenant, rec batchRecord, b api.BatchObject) batchRecord {
	if rec.Validated || rec.Failed || !stopped(b) {
		return rec
	}
	if again, _, ok, err := s.record(ctx, t, rec.ID); err == nil && ok {
		return again
	}
	return rec
}

// resume takes over the work a batch is waiting for whose lease ran out:
// its validation, or the output files of a batch that ended. Every read
// of a batch (get or list) calls it, so a client that only lists still
// sees its batches finish.
//
// The files are built once salvo's batch ended and no validation holds
// the lease, whether or not the record says validated: validation seals
// salvo's batch before it records itself, and a small batch can end in
// between (or its gateway die there); a batch cancelled or expired during
// validation gets the files of what was published before it stopped.
func (s *Server) resume(t tenant, rec batchRecord, b api.BatchObject) {
	switch pendingWork(rec, b, time.Now()) {
	case workValidate:
		s.goValidate(t, rec)
	case workBuild:
		s.goBuild(t, rec)
	case workNone:
	}
}

type work int

const (
	workNone work = iota
	workValidate
	workBuild
)

// pendingWork is the work resume starts for a batch at now.
func pendingWork(rec batchRecord, b api.BatchObject, now time.Time) work {
	switch {
	case rec.Failed || now.UnixMilli() <= rec.LeaseUntil:
		return workNone
	case checking(rec, b):
		return workValidate
	case !rec.Built && lifecycle.BatchStatus(b.Status).Terminal():
		return workBuild
	}
	return workNone
}

// object is OpenAI's batch object from the record and salvo's batch.
// Until the file is checked the batch is validating; a refused file makes
// it failed with errors.data; a batch that ended in salvo is finalizing
// (a cancelled one cancelling) until its output and error files are
// written, however far its validation got: the record may lag salvo's
// batch (see resume), and a batch ended shows its final status only
// with its files.
func (s *Server) object(rec batchRecord, b api.BatchObject) batchObject {
	o := batchObject{
		ID: rec.ID, Object: "batch", Endpoint: rec.Endpoint, InputFileID: rec.InputFileID,
		CompletionWindow: rec.CompletionWindow, Status: b.Status, CreatedAt: deref(b.CreatedAt),
		BatchTimes: b.BatchTimes, RequestCounts: b.RequestCounts,
		Metadata: b.Metadata, Usage: rec.Usage,
	}
	status := lifecycle.BatchStatus(b.Status)
	switch {
	case rec.Failed:
		o.Status, o.FailedAt = string(lifecycle.BatchFailed), &rec.FailedAt
		o.CancellingAt, o.CancelledAt, o.InProgressAt, o.FinalizingAt = nil, nil, nil, nil
		o.Errors = &errorList{Object: "list", Data: rec.Errors}
		o.RequestCounts = api.RequestCounts{}
	case checking(rec, b):
		o.Status = string(lifecycle.BatchValidating)
	case status == lifecycle.BatchValidating:
		o.Status = string(lifecycle.BatchInProgress) // checked and queued; no request claimed yet
	case status == lifecycle.BatchCancelled && b.CancellingAt != nil && !rec.Built:
		// A cancelled batch goes cancelling → cancelled, as OpenAI's does:
		// cancelling until its files are written.
		o.Status, o.CancelledAt = string(lifecycle.BatchCancelling), nil
	case status.Terminal() && !rec.Built:
		o.Status = string(lifecycle.BatchFinalizing) // the output files are being written
		o.CompletedAt, o.FailedAt, o.ExpiredAt, o.CancelledAt = nil, nil, nil, nil
		if o.FinalizingAt == nil {
			o.FinalizingAt = finalTime(b)
		}
	}
	if rec.Built {
		o.OutputFileID, o.ErrorFileID = nonEmpty(rec.OutputFileID), nonEmpty(rec.ErrorFileID)
	}
	if o.Status == string(lifecycle.BatchInProgress) {
		o.EstimatedCompletionAt = estimate(b)
	}
	return o
}

// estimate extrapolates the batch's end from its rate so far.
func estimate(b api.BatchObject) *int64 {
	c := b.Salvo.Counts
	if b.InProgressAt == nil || c.Terminal() == 0 || !b.Salvo.Sealed {
		return nil
	}
	elapsed := float64(time.Now().Unix() - *b.InProgressAt)
	left := float64(c.Total - c.Terminal())
	at := time.Now().Unix() + int64(elapsed/float64(c.Terminal())*left)
	return &at
}

func finalTime(b api.BatchObject) *int64 {
	for _, t := range []*int64{b.CompletedAt, b.FailedAt, b.ExpiredAt, b.CancelledAt} {
		if t != nil {
			return t
		}
	}
	return nil
}

func nonEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func deref(p *int64) int64 {
	if p == nil {
		return 0
	}
	return *p
}

func (s *Server) cancelBatch(w http.ResponseWriter, r *http.Request, t tenant) {
	id := r.PathValue("id")
	rec, _, ok, err := s.record(r.Context(), t, id)
	if err != nil {
		s.serverError(w, "reading the batch", err)
		return
	}
	if !ok {
		writeError(w, http.StatusNotFound, errNotFound, "id", fmt.Sprintf("No such Batch object: %s", id))
		return
	}
	b, err := s.api.CancelBatch(r.Context(), id)
	if err != nil {
		s.serverError(w, "cancelling the batch", err)
		return
	}
	rec = s.fresh(r.Context(), t, rec, b)
	s.resume(t, rec, b)
	writeJSON(w, http.StatusOK, s.object(rec, b))
}

// listBatches is GET /v1/batches: the tenant's batches, newest first,
// after a batch id, up to limit (default 20, most 100).
func (s *Server) listBatches(w http.ResponseWriter, r *http.Request, t tenant) {
	q := r.URL.Query()
	limit, ok := listLimit(w, q.Get("limit"), 20, 100)
	if !ok {
		return
	}
	keys, err := s.batchKeys(r.Context(), t)
	if err != nil {
		s.serverError(w, "listing batches", err)
		return
	}
	var recs []batchRecord
	for _, k := range keys {
		e, err := s.kv.Get(r.Context(), k)
		if err != nil {
			continue // deleted meanwhile
		}
		var rec batchRecord
		if json.Unmarshal(e.Value(), &rec) == nil {
			recs = append(recs, rec)
		}
	}
	slices.SortFunc(recs, func(a, b batchRecord) int {
		if a.CreatedAt != b.CreatedAt {
			return int(b.CreatedAt - a.CreatedAt)
		}
		return strings.Compare(b.ID, a.ID)
	})
	page, more, found := pageAfter(recs, q.Get("after"), limit, func(r batchRecord) string { return r.ID })
	if !found {
		writeError(w, http.StatusBadRequest, errInvalid, "after", fmt.Sprintf("%q is not one of your batches", q.Get("after")))
		return
	}
	objs := make([]batchObject, 0, len(page))
	for _, rec := range page {
		b, err := s.api.Batch(r.Context(), rec.ID)
		if err != nil {
			s.serverError(w, "reading a batch", err)
			return
		}
		rec = s.fresh(r.Context(), t, rec, b)
		s.resume(t, rec, b)
		objs = append(objs, s.object(rec, b))
	}
	writeJSON(w, http.StatusOK, listOf(objs, more, func(o batchObject) string { return o.ID }))
}

// batchKeys lists the keys of the tenant's batch records from the subjects
// of the key-value bucket's stream: one snapshot taken by the server. (A
// key lister, an ordered consumer, can end before a key whose record is
// rewritten while it lists — a batch being validated or finished — and
// the batch would be missing from the page.)
func (s *Server) batchKeys(ctx context.Context, t tenant) ([]string, error) {
	bucket := s.kv.Bucket()
	st, err := s.js.Stream(ctx, "KV_"+bucket)
	if err != nil {
		return nil, err
	}
	prefix := "$KV." + bucket + "."
	info, err := st.Info(ctx, jetstream.WithSubjectFilter(prefix+t.ns+".>"))
	if err != nil {
		return nil, err
	}
	keys := make([]string, 0, len(info.State.Subjects))
	for subject := range info.State.Subjects {
		keys = append(keys, strings.TrimPrefix(subject, prefix))
	}
	return keys, nil
}

// checking reports that the batch's file is still to be checked and its
// requests published. Once salvo's batch is sealed it has every request
// it will get — sealed by the validation (its record lagging), or by an
// expiry — and once stopped it takes no more.
func checking(rec batchRecord, b api.BatchObject) bool {
	return !rec.Validated && !rec.Failed && !stopped(b) && !b.Salvo.Sealed
}

// stopped reports that salvo's batch was cancelled or has ended: nothing
// more is published into it.
func stopped(b api.BatchObject) bool {
	st := lifecycle.BatchStatus(b.Status)
	return st == lifecycle.BatchCancelling || st.Terminal()
}
