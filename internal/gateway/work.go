package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/salvo-run/salvo/internal/producer"
	"github.com/salvo-run/salvo/internal/telemetry"
	"github.com/salvo-run/salvo/pkg/batchfile"
	"github.com/salvo-run/salvo/pkg/lifecycle"
)

// The background work of a batch: checking its file and publishing its
// requests (validate), and writing its output and error files once it
// ended (build). Each runs once per batch in a process at a time; a
// gateway that dies mid-way leaves a lease that runs out, and the next GET
// of the batch, on any gateway, starts the work again — both are
// idempotent (request ids derive from the batch and the line; the files'
// ids from the batch).

// goValidate starts validating a batch's file unless this process is
// already at it.
func (s *Server) goValidate(t tenant, rec batchRecord) {
	s.goOnce("validate:"+rec.ID, func(ctx context.Context) { s.validate(ctx, t, rec) })
}

// goBuild starts writing a batch's output and error files unless this
// process is already at it.
func (s *Server) goBuild(t tenant, rec batchRecord) {
	s.goOnce("build:"+rec.ID, func(ctx context.Context) { s.build(ctx, t, rec) })
}

func (s *Server) goOnce(key string, fn func(ctx context.Context)) {
	s.mu.Lock()
	if s.building[key] {
		s.mu.Unlock()
		return
	}
	s.building[key] = true
	s.wg.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.wg.Done()
		defer func() {
			s.mu.Lock()
			delete(s.building, key)
			s.mu.Unlock()
		}()
		fn(s.bg)
	}()
}

// codes maps batchfile's line error codes to OpenAI's.
var codes = map[string]string{
	batchfile.CodeInvalidJSON:       "invalid_json_line",
	batchfile.CodeDuplicateCustomID: "duplicate_custom_id",
	batchfile.CodeURLMismatch:       "url_mismatch",
	batchfile.CodeMixedEndpoints:    "url_mismatch",
	batchfile.CodeTooManyRequests:   "too_many_tasks",
	batchfile.CodeModelMismatch:     "model_mismatch",
	batchfile.CodeLineTooLong:       "line_too_long",
	batchfile.CodeInvalidRequest:    "invalid_request",
}

// validate checks the batch's input file; a refused file fails the batch
// with errors.data (and cancels the salvo batch, which has no request);
// a good one has its requests published and the salvo batch sealed.
func (s *Server) validate(ctx context.Context, t tenant, rec batchRecord) {
	log := s.log.With().Str("batch_id", rec.ID).Logger()
	release, ok := s.holdLease(ctx, t, rec.ID, log, func(r batchRecord) bool { return r.Validated || r.Failed || r.Built })
	if !ok {
		return
	}
	defer release()
	opts := batchfile.ScanOptions{BatchID: rec.ID, MaxRequests: s.cfg.MaxRequests, MaxBytes: s.cfg.MaxFileBytes,
		Endpoint: rec.Endpoint, OneModel: !s.cfg.MixedModels}
	var errs []lineError
	total := 0
	st, err := s.scanInput(ctx, t, rec, opts, func(batchfile.Line) error { return nil }, func(le *batchfile.LineError) {
		total++
		if len(errs) < maxErrors {
			errs = append(errs, toLineError(le))
		}
	})
	switch {
	case errors.Is(err, batchfile.ErrFileTooLarge):
		errs = append(errs, lineError{Code: "file_too_large", Message: err.Error()})
		total++
	case err != nil:
		log.Warn().Err(err).Msg("reading the input file failed; the next GET of the batch retries")
		return
	case st.Requests == 0 && total == 0:
		errs = append(errs, lineError{Code: "empty_file", Message: "the input file has no request"})
		total++
	}
	if total > 0 {
		s.fail(ctx, t, rec, errs, total, log)
		return
	}
	if s.settledIfStopped(ctx, t, rec, log) {
		return
	}
	pub := s.queue.NewPublisher()
	bt := telemetry.StartBatch(ctx, s.cfg.Tracer, rec.ID)
	if _, err = s.scanInput(ctx, t, rec, opts, func(l batchfile.Line) error {
		if err := bt.Publish(ctx, l.Request, func(ctx context.Context) error { return pub.Publish(ctx, l.Request) }); err != nil {
			return err
		}
		s.metrics.publishedOne(ctx)
		return nil
	}, func(*batchfile.LineError) {}); err == nil {
		err = pub.Flush(ctx)
	}
	bt.End(err)
	if err == nil {
		_, err = s.api.SealBatch(ctx, rec.ID, int64(st.Requests))
	}
	if err != nil {
		if s.settledIfStopped(ctx, t, rec, log) {
			return // cancelled while its requests were published
		}
		log.Warn().Err(err).Msg("publishing the requests failed; the next GET of the batch retries")
		return
	}
	if _, err := s.update(ctx, t, rec.ID, func(r *batchRecord) bool {
		r.Validated, r.LeaseUntil = true, 0
		return true
	}); err != nil {
		log.Warn().Err(err).Msg("recording the validation failed; the next GET of the batch retries")
		return
	}
	log.Info().Int("requests", st.Requests).Msg("batch validated and its requests published")
}

// holdLease takes a batch's work lease for this piece of work, unless
// another holds it (another gateway's or this one's: each holding has its
// own token), and renews it every leaseFor/3 until release; so no two
// pieces of work run on one batch at once. The work gives the lease up in
// its last update of the record (LeaseUntil 0), and a renewal never takes
// it back; work that fails keeps it until it runs out, so it is retried
// once per lease, not on every read. Work that done reports finished in
// the record (read before the last run of it ended) is not taken.
func (s *Server) holdLease(ctx context.Context, t tenant, id string, log zerolog.Logger,
	done func(batchRecord) bool,
) (release func(), ok bool) {
	token := s.id + "/" + strconv.FormatUint(s.leases.Add(1), 10)
	take := func(renew bool) bool {
		mine := false
		_, err := s.update(ctx, t, id, func(r *batchRecord) bool {
			mine = false // update calls this again after a concurrent write
			now := time.Now()
			switch {
			case renew && (r.LeaseOwner != token || r.LeaseUntil == 0):
				return false // taken over, or given up by the work
			case !renew && r.LeaseOwner != "" && r.LeaseUntil > now.UnixMilli():
				return false // held; a new batch's lease has no owner: it waits for its validation
			case !renew && done(*r):
				return false
			}
			r.LeaseOwner, r.LeaseUntil, mine = token, now.Add(leaseFor).UnixMilli(), true
			return true
		})
		if err != nil {
			log.Warn().Err(err).Msg("taking the batch's work lease failed")
			return false
		}
		return mine
	}
	if !take(false) {
		return func() {}, false
	}
	stop := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		tick := time.NewTicker(leaseFor / 3)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				take(true)
			}
		}
	}()
	return func() { close(stop); <-stopped }, true
}

// settledIfStopped ends the validation of a batch cancelled (or ended)
// meanwhile: nothing more is published, and the record is marked settled
// so its status is salvo's from now on. It reports whether it did.
func (s *Server) settledIfStopped(ctx context.Context, t tenant, rec batchRecord, log zerolog.Logger) bool {
	b, err := s.api.Batch(ctx, rec.ID)
	if err != nil || !stopped(b) {
		return false
	}
	if _, err := s.update(ctx, t, rec.ID, func(r *batchRecord) bool {
		r.Validated, r.LeaseUntil = true, 0
		return true
	}); err != nil {
		log.Warn().Err(err).Msg("recording the stopped validation failed")
		return false
	}
	log.Info().Str("status", b.Status).Msg("batch stopped during validation; nothing more published")
	return true
}

// maxErrorMessage bounds one line error's message: a refused batch keeps
// up to maxErrors of them in its record.
const maxErrorMessage = 300

func toLineError(le *batchfile.LineError) lineError {
	code := codes[le.Code]
	if code == "" {
		code = le.Code
	}
	line := le.Line
	msg := le.Error()
	if len(msg) > maxErrorMessage {
		msg = msg[:maxErrorMessage] + "…"
	}
	e := lineError{Code: code, Line: &line, Message: msg}
	if le.Field != "" {
		param := le.Field
		e.Param = &param
	}
	return e
}

// fail records a refused file: the batch is failed with its errors, and
// the salvo batch (open, without a request) is cancelled so it ends too.
func (s *Server) fail(ctx context.Context, t tenant, rec batchRecord, errs []lineError, total int, log zerolog.Logger) {
	// The refusal is recorded first: from then on the batch reads failed,
	// whatever salvo's batch says; its cancel only ends salvo's side (a
	// failed cancel leaves an open batch without requests that its
	// deadline ends).
	if _, err := s.update(ctx, t, rec.ID, func(r *batchRecord) bool {
		r.Failed, r.FailedAt, r.Errors, r.ErrorsTotal, r.LeaseUntil = true, time.Now().Unix(), errs, total, 0
		return true
	}); err != nil {
		log.Warn().Err(err).Msg("recording the refused file failed; the next GET retries")
		return
	}
	if _, err := s.api.CancelBatch(ctx, rec.ID); err != nil {
		log.Warn().Err(err).Msg("cancelling the refused batch in salvo failed; its deadline ends it")
	}
	log.Info().Int("errors", total).Msg("batch input refused")
}

// scanInput streams the batch's input file from the object store through
// batchfile.Scan.
func (s *Server) scanInput(ctx context.Context, t tenant, rec batchRecord, o batchfile.ScanOptions,
	fn func(batchfile.Line) error, bad func(*batchfile.LineError),
) (batchfile.Stats, error) {
	ctx, cancel := context.WithTimeout(ctx, transferTimeout) // see fileContent
	defer cancel()
	obj, err := s.files.Get(ctx, objectName(t, rec.InputFileID))
	if err != nil {
		return batchfile.Stats{}, fmt.Errorf("input file %s: %w", rec.InputFileID, err)
	}
	defer obj.Close()
	return batchfile.Scan(obj, o, fn, bad)
}

// build writes a batch's output and error files from its results (input
// order, streamed through a spool: internal/producer.WriteResults), sums
// the responses' usage, and stores both files in the object store.
func (s *Server) build(ctx context.Context, t tenant, rec batchRecord) {
	log := s.log.With().Str("batch_id", rec.ID).Logger()
	release, ok := s.holdLease(ctx, t, rec.ID, log, func(r batchRecord) bool { return r.Built })
	if !ok {
		return
	}
	defer release()
	dir, err := os.MkdirTemp("", "salvo-gateway-")
	if err != nil {
		log.Error().Err(err).Msg("building the output files failed")
		return
	}
	defer os.RemoveAll(dir)
	out, errPath := filepath.Join(dir, "output.jsonl"), filepath.Join(dir, "errors.jsonl")
	var u usage
	n, err := producer.WriteResults(ctx, s.nc, producer.ResultsOptions{
		BatchID: rec.ID, Output: out, Errors: errPath, Prefix: s.cfg.Prefix,
		OnResult: func(res *lifecycle.Result) { addUsage(&u, res) },
	})
	if err != nil {
		log.Warn().Err(err).Msg("building the output files failed; the next GET retries")
		return
	}
	outID, errID := "", ""
	if n.Output > 0 {
		if outID, err = s.storeFile(ctx, t, "file-"+rec.ID+"-output", rec.ID+"_output.jsonl", out, rec.OutputTTL); err != nil {
			log.Warn().Err(err).Msg("storing the output file failed; the next GET retries")
			return
		}
	}
	if n.Errors > 0 {
		if errID, err = s.storeFile(ctx, t, "file-"+rec.ID+"-errors", rec.ID+"_errors.jsonl", errPath, rec.OutputTTL); err != nil {
			log.Warn().Err(err).Msg("storing the error file failed; the next GET retries")
			return
		}
	}
	if _, err := s.update(ctx, t, rec.ID, func(r *batchRecord) bool {
		r.Built, r.OutputFileID, r.ErrorFileID, r.Usage, r.LeaseUntil = true, outID, errID, &u, 0
		return true
	}); err != nil {
		log.Warn().Err(err).Msg("recording the output files failed; the next GET retries")
		return
	}
	log.Info().Int("output_lines", n.Output).Int("error_lines", n.Errors).Msg("batch output files written")
}

// storeFile puts a local file in the object store as one of the tenant's
// files (purpose batch_output).
// ttl (seconds, 0 for the store's own bound) is the batch's
// output_expires_after.
func (s *Server) storeFile(ctx context.Context, t tenant, id, filename, path string, ttl int64) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	now := time.Now().Unix()
	expires := "0"
	if ttl > 0 {
		expires = strconv.FormatInt(now+ttl, 10)
	}
	ctx, cancel := context.WithTimeout(ctx, transferTimeout) // see fileContent
	defer cancel()
	_, err = s.files.Put(ctx, jetstream.ObjectMeta{Name: objectName(t, id), Metadata: map[string]string{
		"id": id, "filename": filename, "purpose": purposeBatchOutput, "tenant": t.ns,
		"created_at": strconv.FormatInt(now, 10), "expires_at": expires,
	}}, f)
	return id, err
}

// addUsage adds a response's usage (chat and completions: prompt_tokens,
// completion_tokens; responses and embeddings: input_tokens,
// output_tokens) to u.
func addUsage(u *usage, res *lifecycle.Result) {
	if res.Response == nil || len(res.Response.Body) == 0 {
		return
	}
	var body struct {
		Usage struct {
			PromptTokens        int64 `json:"prompt_tokens"`
			CompletionTokens    int64 `json:"completion_tokens"`
			InputTokens         int64 `json:"input_tokens"`
			OutputTokens        int64 `json:"output_tokens"`
			TotalTokens         int64 `json:"total_tokens"`
			PromptTokensDetails struct {
				CachedTokens int64 `json:"cached_tokens"`
			} `json:"prompt_tokens_details"`
			CompletionTokensDetails struct {
				ReasoningTokens int64 `json:"reasoning_tokens"`
			} `json:"completion_tokens_details"`
		} `json:"usage"`
	}
	if json.Unmarshal(res.Response.Body, &body) != nil {
		return
	}
	in := body.Usage.PromptTokens + body.Usage.InputTokens
	out := body.Usage.CompletionTokens + body.Usage.OutputTokens
	u.InputTokens += in
	u.OutputTokens += out
	u.InputTokensDetails.CachedTokens += body.Usage.PromptTokensDetails.CachedTokens
	u.OutputTokensDetails.ReasoningTokens += body.Usage.CompletionTokensDetails.ReasoningTokens
	if body.Usage.TotalTokens > 0 {
		u.TotalTokens += body.Usage.TotalTokens
	} else {
		u.TotalTokens += in + out
	}
}

// partialOutput is GET /v1/batches/{id}/output (salvo's own, beyond
// OpenAI): the output lines of the results so far, in input order, while
// the batch runs (?errors=true for the error lines).
func (s *Server) partialOutput(w http.ResponseWriter, r *http.Request, t tenant) {
	id := r.PathValue("id")
	if _, _, ok, err := s.record(r.Context(), t, id); err != nil || !ok {
		if err != nil {
			s.serverError(w, "reading the batch", err)
			return
		}
		writeError(w, http.StatusNotFound, errNotFound, "id", fmt.Sprintf("No such Batch object: %s", id))
		return
	}
	dir, err := os.MkdirTemp("", "salvo-gateway-")
	if err != nil {
		s.serverError(w, "reading the results", err)
		return
	}
	defer os.RemoveAll(dir)
	out, errPath := filepath.Join(dir, "output.jsonl"), filepath.Join(dir, "errors.jsonl")
	if _, err := producer.WriteResults(r.Context(), s.nc, producer.ResultsOptions{BatchID: id, Output: out, Errors: errPath, Prefix: s.cfg.Prefix}); err != nil {
		s.serverError(w, "reading the results", err)
		return
	}
	path := out
	if r.URL.Query().Get("errors") == "true" {
		path = errPath
	}
	f, err := os.Open(path)
	if err != nil {
		s.serverError(w, "reading the results", err)
		return
	}
	defer f.Close()
	w.Header().Set("Content-Type", "application/jsonl")
	_, _ = io.Copy(w, f)
}
