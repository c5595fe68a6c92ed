// Package producer is the work behind cmd/producer's commands: submit an
// OpenAI batch input file through the batch API and the request stream,
// and write a batch's results as the OpenAI output and error files — both
// in bounded memory, whatever the file's size, and over NATS only.
package producer

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel/trace"

	"github.com/salvo-run/salvo/internal/telemetry"
	"github.com/salvo-run/salvo/pkg/api"
	"github.com/salvo-run/salvo/pkg/batchfile"
	"github.com/salvo-run/salvo/pkg/client"
	"github.com/salvo-run/salvo/pkg/lifecycle"
	"github.com/salvo-run/salvo/pkg/queue"
)

// Limits of an input file. OpenAI's limits are the defaults; salvo has no
// limit of its own below MaxRequestsCeiling, so both can be raised.
const (
	// MaxRequestsDefault is OpenAI's limit of requests per file.
	MaxRequestsDefault = batchfile.MaxRequestsDefault
	// MaxBytesDefault is OpenAI's limit of a batch input file (200 MB).
	MaxBytesDefault int64 = 200_000_000
	// MaxRequestsCeiling is salvo's own bound of requests per batch: the
	// submitting process keeps one custom_id per request in memory to
	// refuse duplicates.
	MaxRequestsCeiling = 10_000_000
)

// SubmitOptions say what to submit and how.
type SubmitOptions struct {
	// Path is the input file (JSONL: custom_id, method, url, body).
	Path string
	// BatchID is the batch's id; empty makes a new one. The same id and
	// file submitted again (after a crash, say) create nothing new and run
	// no request twice: request ids derive from the batch id and the line.
	BatchID string
	// CompletionWindow is the batch's window ("24h", "1h", a Go duration;
	// empty: 24h).
	CompletionWindow string
	// Metadata is the batch's metadata (OpenAI limits: 16 pairs, key ≤ 64,
	// value ≤ 512 bytes).
	Metadata map[string]string
	// SkipInvalid submits the good lines of a file that has bad ones (the
	// bad ones are reported in SubmitResult.Rejected); without it a single
	// bad line stops the submit before anything is created or published.
	SkipInvalid bool
	// MaxRequests bounds the requests (0: MaxRequestsDefault).
	MaxRequests int
	// MaxBytes bounds the file's size (0: MaxBytesDefault; -1: none).
	MaxBytes int64
	// Prefix is the deployment's subject prefix ("" for salvo).
	Prefix string
	// Progress, when set, is called as requests are published (with the
	// count so far) and once at the end.
	Progress func(published int)
	// Logger receives the publisher's warnings; default none.
	Logger *zerolog.Logger
	// Tracer makes a span for the batch and one per published request,
	// whose context the messages carry to the workers; nil makes none.
	Tracer trace.TracerProvider
}

// SubmitResult is what Submit did.
type SubmitResult struct {
	// Batch is the batch as created (or as found, when it existed).
	Batch api.BatchObject
	// Requests is the number of good lines; the batch's total.
	Requests int
	// Rejected are the bad lines (SkipInvalid), in input order.
	Rejected []*batchfile.LineError
	// Published is the number of request messages published (0 when the
	// batch had already finished).
	Published int
	// Lines is the number of lines read.
	Lines int
}

// InvalidFileError reports the bad lines of a file submitted without
// SkipInvalid: nothing was created or published.
type InvalidFileError struct {
	Path   string
	Errors []*batchfile.LineError
	Lines  int
}

func (e *InvalidFileError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %d of %d line(s) invalid, nothing submitted", e.Path, len(e.Errors), e.Lines)
	for i, le := range e.Errors {
		if i == 20 {
			fmt.Fprintf(&b, "\n  … and %d more", len(e.Errors)-i)
			break
		}
		fmt.Fprintf(&b, "\n  %s", le.Error())
	}
	return b.String()
}

// Submit validates the whole file first (every bad line, with its number
// and field), then creates the batch through the batch API with the good
// lines' count as its total, then publishes the requests — reading the
// file twice, never holding it. A batch that exists with the same
// contents is reused; one that has finished gets nothing published.
func Submit(ctx context.Context, nc *nats.Conn, o SubmitOptions) (SubmitResult, error) {
	if o.BatchID == "" {
		o.BatchID = NewBatchID()
	}
	if err := lifecycle.ValidateID("batch_id", o.BatchID); err != nil {
		return SubmitResult{}, err
	}
	scan := batchfile.ScanOptions{BatchID: o.BatchID, MaxRequests: o.MaxRequests, MaxBytes: o.MaxBytes}
	if scan.MaxRequests == 0 {
		scan.MaxRequests = MaxRequestsDefault
	}
	if scan.MaxRequests > MaxRequestsCeiling {
		return SubmitResult{}, fmt.Errorf("max requests %d is above salvo's ceiling of %d", scan.MaxRequests, MaxRequestsCeiling)
	}
	switch {
	case scan.MaxBytes == 0:
		scan.MaxBytes = MaxBytesDefault
	case scan.MaxBytes < 0:
		scan.MaxBytes = 0
	}

	// Pass 1: validate everything; keep only the bad lines.
	var res SubmitResult
	st, err := scanFile(o.Path, scan, func(batchfile.Line) error { return nil }, func(le *batchfile.LineError) {
		res.Rejected = append(res.Rejected, le)
	})
	res.Lines, res.Requests = st.Lines, st.Requests
	if err != nil {
		return res, err
	}
	if len(res.Rejected) > 0 && !o.SkipInvalid {
		return res, &InvalidFileError{Path: o.Path, Errors: res.Rejected, Lines: st.Lines}
	}
	if st.Requests == 0 {
		return res, fmt.Errorf("%s: no valid request in %d line(s)", o.Path, st.Lines)
	}

	// The batch, sealed at the good lines' count.
	c := client.New(nc, o.Prefix)
	res.Batch, err = c.CreateBatch(ctx, api.CreateParams{
		ID: o.BatchID, CompletionWindow: o.CompletionWindow, Endpoint: st.Endpoint,
		Metadata: o.Metadata, Total: int64(st.Requests),
	})
	if err != nil {
		return res, fmt.Errorf("create batch %s: %w", o.BatchID, err)
	}
	if lifecycle.BatchStatus(res.Batch.Status).Terminal() {
		return res, nil // finished already: every request ran once
	}

	// Pass 2: publish. Ids derive from the batch and the line, so a
	// repeated submit publishes the same messages: the stream drops them
	// inside its duplicate window, the workers' records after it.
	q, err := queue.New(nc, queue.Config{Prefix: c.Prefix()}, logger(o.Logger))
	if err != nil {
		return res, err
	}
	defer q.Close()
	pub := q.NewPublisher()
	bt := telemetry.StartBatch(ctx, o.Tracer, o.BatchID)
	st2, err := scanFile(o.Path, scan, func(l batchfile.Line) error {
		if err := bt.Publish(ctx, l.Request, func(ctx context.Context) error { return pub.Publish(ctx, l.Request) }); err != nil {
			return fmt.Errorf("publish line %d: %w", l.Number, err)
		}
		res.Published++
		if o.Progress != nil && res.Published%1000 == 0 {
			o.Progress(res.Published)
		}
		return nil
	}, func(*batchfile.LineError) {})
	if ferr := pub.Flush(ctx); err == nil && ferr != nil {
		err = fmt.Errorf("%w; submit again with --batch-id %s: nothing runs twice", ferr, o.BatchID)
	}
	bt.End(err)
	if o.Progress != nil {
		o.Progress(res.Published)
	}
	if err != nil {
		return res, err
	}
	if st2.Requests != st.Requests {
		return res, fmt.Errorf("%s changed while it was submitted (%d good lines, then %d)", o.Path, st.Requests, st2.Requests)
	}
	return res, nil
}

// scanFile runs batchfile.Scan over the file at path.
func scanFile(path string, o batchfile.ScanOptions, fn func(batchfile.Line) error, bad func(*batchfile.LineError)) (batchfile.Stats, error) {
	f, err := os.Open(path)
	if err != nil {
		return batchfile.Stats{}, err
	}
	defer f.Close()
	st, err := batchfile.Scan(f, o, fn, bad)
	if errors.Is(err, batchfile.ErrFileTooLarge) {
		return st, fmt.Errorf("%s: %w (OpenAI's limit, the default; raise it with --max-bytes)", path, err)
	}
	return st, err
}

// NewBatchID makes a batch id: "batch_" and 24 random hex characters.
func NewBatchID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return "batch_" + hex.EncodeToString(b[:])
}

func logger(l *zerolog.Logger) zerolog.Logger {
	if l == nil {
		return zerolog.Nop()
	}
	return *l
}
