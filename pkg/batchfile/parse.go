package batchfile

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/salvo-run/salvo/pkg/lifecycle"
)

// Parse defaults and bounds.
const (
	// MaxLineBytesDefault bounds one input line: a request must fit one
	// NATS message (default max payload 1 MiB) with room for its envelope.
	MaxLineBytesDefault = 1_000_000
	// MaxRequestsDefault is the OpenAI limit of requests per batch file.
	MaxRequestsDefault = 50_000
	// maxBatchIDLength leaves room for "-<line>" within lifecycle.MaxIDLength.
	maxBatchIDLength = lifecycle.MaxIDLength - 16
	readBufferSize   = 64 << 10
)

// ErrInvalidOptions is wrapped by every ParseOptions.Validate error.
var ErrInvalidOptions = errors.New("batchfile: invalid options")

// ParseOptions say which batch the parsed requests belong to.
type ParseOptions struct {
	// BatchID is the batch the requests join; request ids derive from it.
	BatchID string
	// CreatedAt is the batch's creation time; default time.Now().
	CreatedAt time.Time
	// CompletionWindow is the batch's window ("24h", "1h", any Go
	// duration); empty means lifecycle.CompletionWindowDefault. Every
	// request expires at CreatedAt + CompletionWindow.
	CompletionWindow string
	// MaxLineBytes bounds one line; longer lines are line errors.
	MaxLineBytes int
	// MaxRequests bounds the good requests; lines beyond it are line errors.
	MaxRequests int
	// MaxBytes bounds the whole file (0: no bound).
	MaxBytes int64
}

// WithDefaults returns o with every unset field at its default.
func (o ParseOptions) WithDefaults() ParseOptions {
	if o.CreatedAt.IsZero() {
		o.CreatedAt = time.Now()
	}
	if o.MaxLineBytes == 0 {
		o.MaxLineBytes = MaxLineBytesDefault
	}
	if o.MaxRequests == 0 {
		o.MaxRequests = MaxRequestsDefault
	}
	return o
}

// Validate reports the first invalid field by name.
func (o ParseOptions) Validate() error {
	switch {
	case o.BatchID == "":
		return fmt.Errorf("%w: BatchID is required", ErrInvalidOptions)
	case len(o.BatchID) > maxBatchIDLength:
		return fmt.Errorf("%w: BatchID is longer than %d bytes", ErrInvalidOptions, maxBatchIDLength)
	case strings.ContainsFunc(o.BatchID, func(r rune) bool { return r <= ' ' || r >= 0x7f }):
		return fmt.Errorf("%w: BatchID %q must be printable ASCII without spaces", ErrInvalidOptions, o.BatchID)
	case o.MaxLineBytes < 1:
		return fmt.Errorf("%w: MaxLineBytes %d must be positive", ErrInvalidOptions, o.MaxLineBytes)
	case o.MaxRequests < 1:
		return fmt.Errorf("%w: MaxRequests %d must be positive", ErrInvalidOptions, o.MaxRequests)
	}
	if _, err := lifecycle.ParseCompletionWindow(o.CompletionWindow); err != nil {
		return fmt.Errorf("%w: CompletionWindow: %w", ErrInvalidOptions, err)
	}
	return nil
}

// Line is one good request and the input line it came from (1-based).
type Line struct {
	Number  int
	Request *lifecycle.Request
}

// Parsed is what Parse read.
type Parsed struct {
	// Requests are the good lines, in input order.
	Requests []Line
	// Errors are the bad lines, in input order.
	Errors []*LineError
	// Lines is the number of lines read, blank ones included.
	Lines int
	// ExpiresAt is the deadline given to every request.
	ExpiresAt time.Time
}

// RequestID is the id of the request on line of batchID's input file.
func RequestID(batchID string, line int) string {
	return batchID + "-" + strconv.Itoa(line)
}

// Parse reads an OpenAI batch input file into memory. The returned error
// is an I/O error or invalid options only; bad lines are in Parsed.Errors
// and never stop the good ones. Large files should use Scan instead.
func Parse(r io.Reader, o ParseOptions) (Parsed, error) {
	o = o.WithDefaults()
	if err := o.Validate(); err != nil {
		return Parsed{}, err
	}
	window, _ := lifecycle.ParseCompletionWindow(o.CompletionWindow) // checked by Validate
	p := Parsed{ExpiresAt: o.CreatedAt.Add(window)}
	st, err := scan(r, o, p.ExpiresAt, "", false, func(l Line) error {
		p.Requests = append(p.Requests, l)
		return nil
	}, func(e *LineError) { p.Errors = append(p.Errors, e) })
	p.Lines = st.Lines
	return p, err
}

// ScanOptions bound a streamed read of an input file (Scan).
type ScanOptions struct {
	// BatchID is the batch the requests join; request ids derive from it
	// (RequestID) and are the same on every read of the same file.
	BatchID string
	// MaxLineBytes bounds one line (default MaxLineBytesDefault).
	MaxLineBytes int
	// MaxRequests bounds the good requests (default MaxRequestsDefault);
	// lines beyond it are line errors.
	MaxRequests int
	// MaxBytes bounds the whole file (0: no bound); a longer file stops
	// the scan with ErrFileTooLarge.
	MaxBytes int64
	// Endpoint, when set, is the url every line must name (the batch's
	// endpoint); a line naming another is a CodeURLMismatch error.
	// Without it the first good line sets the file's endpoint.
	Endpoint string
	// OneModel requires every line's body.model to be the first good
	// line's (OpenAI's rule for a batch; salvo itself routes any mix):
	// another is a CodeModelMismatch error.
	OneModel bool
}

// ErrFileTooLarge: the input file is larger than ScanOptions.MaxBytes.
var ErrFileTooLarge = errors.New("batchfile: file too large")

// Stats is what Scan read.
type Stats struct {
	// Lines is the number of lines read, blank ones included.
	Lines int
	// Requests is the number of good lines.
	Requests int
	// Errors is the number of bad lines.
	Errors int
	// Bytes is the size read.
	Bytes int64
	// Endpoint is the url of the good lines (one per file).
	Endpoint string
}

// Scan reads an OpenAI batch input file line by line, holding one line at
// a time (and the custom_ids seen, to refuse duplicates): good requests go
// to fn in input order, bad lines to bad. The requests carry no expires_at:
// the batch's applies. Every good line must name the same url (one
// endpoint per file, as OpenAI requires). An error from fn stops the scan
// and is returned; so is an I/O error or ErrFileTooLarge.
func Scan(r io.Reader, o ScanOptions, fn func(Line) error, bad func(*LineError)) (Stats, error) {
	po := ParseOptions{BatchID: o.BatchID, CreatedAt: time.Unix(0, 0), MaxLineBytes: o.MaxLineBytes, MaxRequests: o.MaxRequests, MaxBytes: o.MaxBytes}.WithDefaults()
	if err := po.Validate(); err != nil {
		return Stats{}, err
	}
	return scan(r, po, time.Time{}, o.Endpoint, o.OneModel, fn, bad)
}

func scan(r io.Reader, o ParseOptions, expiresAt time.Time, endpoint string, oneModel bool, fn func(Line) error, bad func(*LineError)) (Stats, error) {
	st := Stats{Endpoint: endpoint}
	model, modelLine := "", 0
	seen := map[string]int{} // custom_id → line
	endpointLine := 0
	br := bufio.NewReaderSize(r, readBufferSize)
	var buf []byte
	for {
		line, tooLong, err := readLine(br, o.MaxLineBytes, buf[:0])
		if errors.Is(err, io.EOF) {
			return st, nil
		}
		if err != nil {
			return st, fmt.Errorf("batchfile: read line %d: %w", st.Lines+1, err)
		}
		buf = line
		st.Lines++
		st.Bytes += int64(len(line)) + 1
		if o.MaxBytes > 0 && st.Bytes > o.MaxBytes+1 {
			return st, fmt.Errorf("%w: more than %d bytes at line %d", ErrFileTooLarge, o.MaxBytes, st.Lines)
		}
		n := st.Lines
		if tooLong {
			st.Errors++
			bad(&LineError{Line: n, Code: CodeLineTooLong, Reason: fmt.Sprintf("longer than %d bytes", o.MaxLineBytes)})
			continue
		}
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		req, lerr := decodeLine(line, n, o.BatchID, expiresAt)
		if lerr == nil {
			first, dup := seen[req.CustomID]
			switch {
			case dup:
				lerr = &LineError{Line: n, Code: CodeDuplicateCustomID, Field: "custom_id", CustomID: req.CustomID,
					Reason: fmt.Sprintf("%q duplicates line %d", req.CustomID, first)}
			case endpoint != "" && req.URL != endpoint:
				lerr = &LineError{Line: n, Code: CodeURLMismatch, Field: "url", CustomID: req.CustomID,
					Reason: fmt.Sprintf("%q is not the batch's endpoint %q", req.URL, endpoint)}
			case st.Endpoint != "" && req.URL != st.Endpoint:
				lerr = &LineError{Line: n, Code: CodeMixedEndpoints, Field: "url", CustomID: req.CustomID,
					Reason: fmt.Sprintf("%q differs from %q on line %d: one endpoint per file", req.URL, st.Endpoint, endpointLine)}
			case oneModel && model != "" && req.Model != model:
				lerr = &LineError{Line: n, Code: CodeModelMismatch, Field: "body.model", CustomID: req.CustomID,
					Reason: fmt.Sprintf("%q differs from %q on line %d: one model per batch", req.Model, model, modelLine)}
			case st.Requests >= o.MaxRequests:
				lerr = &LineError{Line: n, Code: CodeTooManyRequests, CustomID: req.CustomID,
					Reason: fmt.Sprintf("the batch already has the maximum of %d requests", o.MaxRequests)}
			}
		}
		if lerr != nil {
			st.Errors++
			bad(lerr)
			continue
		}
		seen[req.CustomID] = n
		if st.Endpoint == "" {
			st.Endpoint, endpointLine = req.URL, n
		}
		if model == "" {
			model, modelLine = req.Model, n
		}
		st.Requests++
		if err := fn(Line{Number: n, Request: req}); err != nil {
			return st, err
		}
	}
}

// readLine returns the next line without its line break, appended to buf.
// A line longer than maxLen is read to its end and reported with tooLong
// (its bytes are dropped, so memory stays bounded). io.EOF means no more
// lines.
func readLine(br *bufio.Reader, maxLen int, buf []byte) (line []byte, tooLong bool, err error) {
	read := 0
	for {
		frag, err := br.ReadSlice('\n')
		read += len(frag)
		if !tooLong {
			buf = append(buf, frag...)
			if len(bytes.TrimRight(buf, "\r\n")) > maxLen {
				tooLong, buf = true, buf[:0]
			}
		}
		switch {
		case err == nil:
			return bytes.TrimRight(buf, "\r\n"), tooLong, nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF):
			if read == 0 {
				return nil, false, io.EOF
			}
			return bytes.TrimRight(buf, "\r\n"), tooLong, nil
		default:
			return nil, false, err
		}
	}
}

// inputFields are the fields of an input line.
var inputFields = map[string]bool{"custom_id": true, "method": true, "url": true, "body": true}

// decodeLine turns one non-blank line into a request or a line error naming
// the first bad field.
func decodeLine(line []byte, n int, batchID string, expiresAt time.Time) (*lifecycle.Request, *LineError) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(line, &fields); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) || string(line) == "null" {
			return nil, &LineError{Line: n, Code: CodeInvalidJSON, Reason: "must be a JSON object"}
		}
		return nil, &LineError{Line: n, Code: CodeInvalidJSON, Reason: "invalid JSON: " + err.Error()}
	}
	if fields == nil {
		return nil, &LineError{Line: n, Code: CodeInvalidJSON, Reason: "must be a JSON object"}
	}
	bad := func(field, format string, args ...any) *LineError {
		return &LineError{Line: n, Code: CodeInvalidRequest, Field: field, Reason: fmt.Sprintf(format, args...)}
	}

	customID, lerr := stringField(fields, "custom_id", bad)
	if lerr != nil {
		return nil, lerr
	}
	withID := func(e *LineError) *LineError { e.CustomID = customID; return e }
	method, lerr := stringField(fields, "method", bad)
	if lerr != nil {
		return nil, withID(lerr)
	}
	if method != http.MethodPost {
		return nil, withID(bad("method", "%q is not supported (only POST)", method))
	}
	url, lerr := stringField(fields, "url", bad)
	if lerr != nil {
		return nil, withID(lerr)
	}
	if err := lifecycle.ValidatePath(url); err != nil {
		return nil, withID(fromValidation(n, err))
	}
	body, ok := fields["body"]
	if !ok || string(body) == "null" {
		return nil, withID(bad("body", "is required"))
	}
	if body = bytes.TrimSpace(body); body[0] != '{' {
		return nil, withID(bad("body", "must be a JSON object"))
	}
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(body, &probe); err != nil {
		return nil, withID(bad("body", "must be a JSON object"))
	}
	model, lerr := stringField(probe, "model", func(field, format string, args ...any) *LineError {
		return bad("body."+field, format, args...)
	})
	if lerr != nil {
		return nil, withID(lerr)
	}
	if unknown := unknownFields(fields); unknown != "" {
		return nil, withID(bad(unknown, "unknown field (want custom_id, method, url, body)"))
	}

	req := &lifecycle.Request{
		V:         lifecycle.WireVersion,
		ID:        RequestID(batchID, n),
		BatchID:   batchID,
		CustomID:  customID,
		Model:     model,
		Method:    method,
		URL:       url,
		Body:      append(json.RawMessage(nil), body...),
		ExpiresAt: expiresAt,
	}
	if err := req.Validate(); err != nil {
		return nil, withID(fromValidation(n, err))
	}
	return req, nil
}

// stringField reads a required, non-blank string field.
func stringField(fields map[string]json.RawMessage, name string,
	bad func(field, format string, args ...any) *LineError,
) (string, *LineError) {
	raw, ok := fields[name]
	if !ok || string(raw) == "null" {
		return "", bad(name, "is required")
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", bad(name, "must be a string")
	}
	if strings.TrimSpace(s) == "" {
		return "", bad(name, "is required")
	}
	return s, nil
}

// unknownFields names the first (sorted) field an input line must not have.
func unknownFields(fields map[string]json.RawMessage) string {
	var extra []string
	for k := range fields {
		if !inputFields[k] {
			extra = append(extra, k)
		}
	}
	if len(extra) == 0 {
		return ""
	}
	sort.Strings(extra)
	return extra[0]
}

// fromValidation turns a lifecycle validation error into a line error,
// naming the field as it appears in the input file.
func fromValidation(n int, err error) *LineError {
	var fe *lifecycle.FieldError
	if !errors.As(err, &fe) {
		return &LineError{Line: n, Code: CodeInvalidRequest, Reason: err.Error()}
	}
	field := fe.Field
	if field == "model" {
		field = "body.model"
	}
	return &LineError{Line: n, Code: CodeInvalidRequest, Field: field, Reason: fe.Reason}
}
