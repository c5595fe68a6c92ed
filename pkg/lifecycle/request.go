package lifecycle

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// WireVersion is the version of the request and result messages (field "v").
const WireVersion = 1

// Limits on request fields.
const (
	MaxIDLength       = 256
	MaxCustomIDLength = 512
	MaxMetadataPairs  = 16
	MaxMetadataKey    = 64
	MaxMetadataValue  = 512
	// MaxSubjectLength bounds result_subject.
	MaxSubjectLength = 256
)

// MalformedIDPrefix starts the id a malformed request message gets when
// none can be read from it (MalformedID). Request ids may not start with it,
// so such an id never names a real request.
const MalformedIDPrefix = "malformed-"

// MalformedID is the id of the malformed request message stored at
// streamSeq in the REQUESTS stream when no usable id can be read from it:
// the same on every delivery and on every worker, so the message is
// recorded and reported once.
func MalformedID(streamSeq uint64) string {
	return MalformedIDPrefix + strconv.FormatUint(streamSeq, 10)
}

// ReservedID reports whether id is one only MalformedID may produce.
func ReservedID(id string) bool { return strings.HasPrefix(id, MalformedIDPrefix) }

// Request is one HTTP call to run, exactly as it travels in a request message
// body (see docs/PROTOCOL.md). URL is a path: the upstream base URL and the
// credentials come from the worker's routing config for Model.
type Request struct {
	V             int               `json:"v"`
	ID            string            `json:"id"`
	BatchID       string            `json:"batch_id,omitempty"`
	CustomID      string            `json:"custom_id,omitempty"`
	Model         string            `json:"model"`
	Method        string            `json:"method"`
	URL           string            `json:"url"`
	Body          json.RawMessage   `json:"body,omitempty"`
	ExpiresAt     time.Time         `json:"expires_at,omitzero"`
	ResultSubject string            `json:"result_subject,omitempty"`
	Metadata      map[string]string `json:"metadata,omitempty"`
}

// Ref returns the request's store reference.
func (r *Request) Ref() Ref { return Ref{ID: r.ID, BatchID: r.BatchID} }

// Stream reports whether the body asks for a streamed (SSE) response. A
// body that holds neither the bytes "stream" nor a \u escape (which could
// spell the key) cannot, and is not parsed again: most bodies are not.
func (r *Request) Stream() bool {
	if len(r.Body) == 0 || !bytes.Contains(r.Body, streamKey) && !bytes.Contains(r.Body, unicodeEscape) {
		return false
	}
	var probe struct {
		Stream bool `json:"stream"`
	}
	if err := json.Unmarshal(r.Body, &probe); err != nil {
		return false
	}
	return probe.Stream
}

var (
	streamKey     = []byte("stream")
	unicodeEscape = []byte(`\u`)
)

// FieldError names the field of a message that is wrong.
type FieldError struct {
	Field  string
	Reason string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Reason }

func fieldErr(field, format string, args ...any) error {
	return &FieldError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// Validate checks every field of a request and returns the first problem as
// a *FieldError naming the field.
func (r *Request) Validate() error {
	if r.V != WireVersion {
		return fieldErr("v", "unsupported version %d (want %d)", r.V, WireVersion)
	}
	if err := validateID("id", r.ID, MaxIDLength); err != nil {
		return err
	}
	if ReservedID(r.ID) {
		return fieldErr("id", "%q: ids starting with %q are reserved for malformed messages", r.ID, MalformedIDPrefix)
	}
	if r.BatchID != "" {
		if err := validateID("batch_id", r.BatchID, MaxIDLength); err != nil {
			return err
		}
	}
	if len(r.CustomID) > MaxCustomIDLength {
		return fieldErr("custom_id", "longer than %d bytes", MaxCustomIDLength)
	}
	if strings.ContainsAny(r.CustomID, "\r\n\x00") {
		return fieldErr("custom_id", "must not contain control characters")
	}
	if strings.TrimSpace(r.Model) == "" {
		return fieldErr("model", "is required")
	}
	if len(r.Model) > MaxIDLength {
		return fieldErr("model", "longer than %d bytes", MaxIDLength)
	}
	switch r.Method {
	case http.MethodPost, http.MethodGet, http.MethodPut, http.MethodPatch, http.MethodDelete:
	case "":
		return fieldErr("method", "is required")
	default:
		return fieldErr("method", "%q is not one of POST, GET, PUT, PATCH, DELETE", r.Method)
	}
	if err := ValidatePath(r.URL); err != nil {
		return err
	}
	if len(r.Body) > 0 {
		if err := r.validateBody(); err != nil {
			return err
		}
	}
	if r.ExpiresAt.IsZero() && r.BatchID == "" {
		return fieldErr("expires_at", "is required (RFC 3339) for a request without a batch_id")
	}
	if r.ResultSubject != "" {
		if err := validateSubject("result_subject", r.ResultSubject); err != nil {
			return err
		}
	}
	if len(r.Metadata) > MaxMetadataPairs {
		return fieldErr("metadata", "has %d pairs, at most %d allowed", len(r.Metadata), MaxMetadataPairs)
	}
	for k, v := range r.Metadata {
		if k == "" || len(k) > MaxMetadataKey || !headerSafe(k, true) {
			return fieldErr("metadata", "key %q must be 1-%d letters, digits, '-' or '_'", k, MaxMetadataKey)
		}
		if len(v) > MaxMetadataValue || !headerSafe(v, false) {
			return fieldErr("metadata."+k, "value must be at most %d printable characters", MaxMetadataValue)
		}
	}
	return nil
}

// validateBody checks that the body is a JSON object and that its "model",
// when it has one, names the envelope's model: routing, per-model limits
// and billing follow the envelope, so a body asking the upstream for
// another model is refused rather than rewritten. A body without "model"
// is sent as it is.
func (r *Request) validateBody() error {
	trimmed := bytes.TrimSpace(r.Body)
	// A map, not a struct: struct fields match keys case-insensitively,
	// and the upstream reads "model" exactly (the last one when repeated).
	var top map[string]json.RawMessage
	if len(trimmed) == 0 || trimmed[0] != '{' || json.Unmarshal(trimmed, &top) != nil {
		return fieldErr("body", "must be a JSON object")
	}
	raw, ok := top["model"]
	if !ok {
		return nil
	}
	var model string
	if len(raw) == 0 || raw[0] != '"' || json.Unmarshal(raw, &model) != nil {
		if len(raw) > 64 {
			raw = append(raw[:64:64], "..."...)
		}
		return fieldErr("body.model", "must be a string naming model %q, not %s", r.Model, raw)
	}
	if model != r.Model {
		return fieldErr("body.model", "%q differs from model %q; the envelope's model routes and bills the request, so both must name the same model",
			model, r.Model)
	}
	return nil
}

func validateID(field, v string, maxLen int) error {
	switch {
	case v == "":
		return fieldErr(field, "is required")
	case len(v) > maxLen:
		return fieldErr(field, "longer than %d bytes", maxLen)
	case !headerSafe(v, false) || strings.ContainsAny(v, " \t"):
		return fieldErr(field, "%q must be printable ASCII without spaces", v)
	case strings.ContainsAny(v, "{}"):
		// Ids end up inside Redis hash tags ({batch}); a brace would move
		// a batch's keys to different cluster slots.
		return fieldErr(field, "%q must not contain '{' or '}'", v)
	}
	return nil
}

// headerSafe reports whether v may be sent as (key: token chars only) an HTTP
// header value without escaping.
func headerSafe(v string, key bool) bool {
	for i := 0; i < len(v); i++ {
		c := v[i]
		if key {
			if !plainTokenByte(c) && c != '_' {
				return false
			}
			continue
		}
		if c < 0x20 || c > 0x7e {
			return false
		}
	}
	return true
}

// ValidatePath checks that a request url is a plain absolute path such as
// "/v1/chat/completions": no scheme, host, "." or ".." segments (also when
// percent-encoded, "%2e%2e" or "%2f..%2f"), control characters, spaces,
// non-ASCII bytes or backslashes (also "%5c").
func ValidatePath(p string) error {
	switch {
	case p == "":
		return fieldErr("url", "is required")
	case !strings.HasPrefix(p, "/") || strings.HasPrefix(p, "//"):
		return fieldErr("url", "%q must be a path starting with a single '/'", p)
	case strings.Contains(p, "://"):
		return fieldErr("url", "%q must be a path, not an absolute URL", p)
	case !pathSafe(p):
		return fieldErr("url", "%q contains a forbidden character", p)
	}
	path := p
	if i := strings.IndexAny(path, "?#"); i >= 0 {
		path = path[:i]
	}
	// Check the path as the upstream will see it after decoding.
	decoded, err := url.PathUnescape(path)
	if err != nil {
		return fieldErr("url", "%q has an invalid percent escape", p)
	}
	if strings.ContainsFunc(decoded, func(r rune) bool { return r < ' ' || r == 0x7f || r == '\\' }) {
		return fieldErr("url", "%q encodes a control character or backslash", p)
	}
	for _, seg := range strings.Split(decoded, "/") {
		if seg == ".." || seg == "." {
			return fieldErr("url", "%q must not contain '.' or '..' segments", p)
		}
	}
	return nil
}

// pathSafe reports whether p holds only printable ASCII other than space
// and backslash.
func pathSafe(p string) bool {
	for i := 0; i < len(p); i++ {
		if c := p[i]; c <= ' ' || c >= 0x7f || c == '\\' {
			return false
		}
	}
	return true
}

// validateSubject checks a NATS subject to publish to: dot-separated
// non-empty tokens of printable ASCII, no wildcards ('*', '>'), no spaces.
func validateSubject(field, subj string) error {
	if len(subj) > MaxSubjectLength {
		return fieldErr(field, "longer than %d bytes", MaxSubjectLength)
	}
	for _, tok := range strings.Split(subj, ".") {
		if tok == "" {
			return fieldErr(field, "%q has an empty token", subj)
		}
		for i := 0; i < len(tok); i++ {
			if c := tok[i]; c <= ' ' || c >= 0x7f || c == '*' || c == '>' {
				return fieldErr(field, "%q must be a subject without wildcards, spaces or control characters", subj)
			}
		}
	}
	return nil
}

// DecodeRequest parses and validates a request message body.
func DecodeRequest(data []byte) (*Request, error) {
	var r Request
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("lifecycle: decode request: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("lifecycle: decode request: data after the JSON object")
	}
	if err := r.Validate(); err != nil {
		return &r, fmt.Errorf("lifecycle: invalid request: %w", err)
	}
	return &r, nil
}

// ValidateID checks a batch or request id given outside a request message
// (the batch API): what Validate requires of id and batch_id. The error is
// a *FieldError naming field.
func ValidateID(field, v string) error {
	if err := validateID(field, v, MaxIDLength); err != nil {
		return err
	}
	if ReservedID(v) {
		return fieldErr(field, "%q: ids starting with %q are reserved for malformed messages", v, MalformedIDPrefix)
	}
	return nil
}
