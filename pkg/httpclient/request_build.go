package httpclient

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/salvo-run/salvo/pkg/lifecycle"
)

// Header names salvo sends upstream.
const (
	HeaderRequestID        = "X-Request-Id"
	HeaderSalvoRequestID   = "X-Salvo-Request-Id"
	HeaderSalvoCustomID    = "X-Salvo-Custom-Id"
	HeaderSalvoBatchID     = "X-Salvo-Batch-Id"
	HeaderBatchPrefix      = "X-Salvo-Batch-" // + batch metadata key, '_' → '-'
	HeaderMetaPrefix       = "X-Salvo-Meta-"  // + request metadata key, '_' → '-'
	HeaderTraceParent      = "Traceparent"
	uploadFrameSize        = 64 << 10
	contentTypeJSON        = "application/json"
	contentTypeEventStream = "text/event-stream"
)

// joinURL joins a request path (with optional query) under the route's base
// and refuses anything that escapes it: '..' or '.' segments (also percent-
// encoded), absolute URLs, "//host", another scheme, host or path prefix.
func joinURL(base *url.URL, reqPath string) (*url.URL, error) {
	if err := lifecycle.ValidatePath(reqPath); err != nil {
		return nil, err
	}
	u, err := url.Parse(base.Scheme + "://" + base.Host + base.EscapedPath() + reqPath)
	if err != nil {
		return nil, fmt.Errorf("url %q: %w", reqPath, err)
	}
	if u.Scheme != base.Scheme || u.Host != base.Host || u.User != nil {
		return nil, fmt.Errorf("url %q escapes the route's base", reqPath)
	}
	if base.Path != "" && u.Path != base.Path && !strings.HasPrefix(u.Path, base.Path+"/") {
		return nil, fmt.Errorf("url %q escapes the route's base path", reqPath)
	}
	for _, seg := range strings.Split(u.Path, "/") {
		if seg == "." || seg == ".." {
			return nil, fmt.Errorf("url %q must not contain '.' or '..' segments", reqPath)
		}
	}
	u.Fragment, u.RawFragment = "", ""
	return u, nil
}

// hasBody reports whether the method carries the request body upstream.
func hasBody(method string, body []byte) bool {
	if len(body) == 0 {
		return false
	}
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodDelete:
		return false
	}
	return true
}

// buildHeaders assembles the upstream headers: route headers first, then
// salvo's own (which win), then Authorization.
func buildHeaders(req *lifecycle.Request, call Call, route Route, key Secret, body bool) (http.Header, error) {
	h := make(http.Header, 8+len(route.Headers)+len(call.BatchMetadata)+len(req.Metadata))
	for k, v := range route.Headers {
		h.Set(k, v)
	}
	set := func(k, v string) error {
		if !validHeaderName(k) {
			return fmt.Errorf("header name %q is invalid", k)
		}
		if !validHeaderValue(v) {
			return fmt.Errorf("header %s: value contains control characters", k)
		}
		h.Set(k, v)
		return nil
	}
	if body {
		h.Set("Content-Type", contentTypeJSON)
	}
	if err := set(HeaderRequestID, req.ID); err != nil {
		return nil, err
	}
	h.Set(HeaderSalvoRequestID, req.ID)
	if req.CustomID != "" {
		if err := set(HeaderSalvoCustomID, req.CustomID); err != nil {
			return nil, err
		}
	}
	if req.BatchID != "" {
		if err := set(HeaderSalvoBatchID, req.BatchID); err != nil {
			return nil, err
		}
	}
	for k, v := range call.BatchMetadata {
		if err := set(HeaderBatchPrefix+strings.ReplaceAll(k, "_", "-"), v); err != nil {
			return nil, err
		}
	}
	for k, v := range req.Metadata {
		if err := set(HeaderMetaPrefix+strings.ReplaceAll(k, "_", "-"), v); err != nil {
			return nil, err
		}
	}
	if call.TraceParent != "" {
		if err := set(HeaderTraceParent, call.TraceParent); err != nil {
			return nil, err
		}
	}
	if !key.IsZero() {
		if !validHeaderValue(key.Reveal()) {
			return nil, fmt.Errorf("api key contains control characters")
		}
		h.Set("Authorization", "Bearer "+key.Reveal())
	}
	return h, nil
}

// validHeaderName reports whether k is an RFC 9110 token.
func validHeaderName(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// validHeaderValue rejects control characters other than horizontal tab.
func validHeaderValue(v string) bool {
	for i := 0; i < len(v); i++ {
		c := v[i]
		if (c < 0x20 && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

// uploadBody feeds the buffered request body to the transport in frames of
// at most 64 KiB, reporting progress to the watchdog so a stalled upload is
// detected. Every attempt gets a fresh reader over the same bytes, so a
// retried request sends an identical body.
type uploadBody struct {
	r        *bytes.Reader
	progress func()
}

func newUploadBody(b []byte, progress func()) *uploadBody {
	return &uploadBody{r: bytes.NewReader(b), progress: progress}
}

func (u *uploadBody) Read(p []byte) (int, error) {
	if len(p) > uploadFrameSize {
		p = p[:uploadFrameSize]
	}
	n, err := u.r.Read(p)
	if n > 0 && u.progress != nil {
		u.progress()
	}
	return n, err
}

func (u *uploadBody) Close() error { return nil }

var _ io.ReadCloser = (*uploadBody)(nil)
