package httpclient

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"time"

	"github.com/salvo-run/salvo/pkg/lifecycle"
	"github.com/salvo-run/salvo/pkg/ratelimit"
)

// prepared is a request ready to send: every attempt sends exactly these
// bytes and headers.
type prepared struct {
	method string
	url    string
	header http.Header
	body   []byte // nil when the method sends no body
	stream bool
	h2c    bool // the route speaks HTTP/2 without TLS
}

// prepare resolves URL, key and headers; an error is a request build error.
func prepare(req *lifecycle.Request, call Call, route Route, base *url.URL) (*prepared, error) {
	u, err := joinURL(base, req.URL)
	if err != nil {
		return nil, err
	}
	key := route.APIKey
	if route.AllowRequestAPIKey && !call.APIKey.IsZero() {
		key = call.APIKey
	}
	method := req.Method
	if method == "" {
		method = http.MethodPost
	}
	withBody := hasBody(method, req.Body)
	h, err := buildHeaders(req, call, route, key, withBody)
	if err != nil {
		return nil, err
	}
	p := &prepared{method: method, url: u.String(), header: h, stream: req.Stream(), h2c: route.H2C}
	if withBody {
		p.body = req.Body
	}
	return p, nil
}

// attempt sends the request once. The second result is non-nil only for a
// transport error before a status line that may be retried in-process.
func (c *Client) attempt(ctx context.Context, st *clientState, p *prepared) (*Response, error) {
	to := st.cfg.Timeouts
	bodyCtx, cancelBody := context.WithTimeoutCause(ctx, to.Body, &TimeoutError{Phase: PhaseBody, After: to.Body})
	defer cancelBody()
	actx, cancel := context.WithCancelCause(bodyCtx)
	defer cancel(nil)
	wd := newWatchdog(cancel)
	defer wd.stop()

	trace := &httptrace.ClientTrace{
		GotConn: func(httptrace.GotConnInfo) {
			if p.body != nil {
				wd.arm(PhaseUpload, to.UploadStall)
			}
		},
		WroteRequest: func(httptrace.WroteRequestInfo) { wd.arm(PhaseFirstByte, to.FirstByte) },
		GotFirstResponseByte: func() {
			if !p.stream {
				wd.arm(PhaseIdle, to.Idle)
			}
		},
	}
	hreq, err := http.NewRequestWithContext(httptrace.WithClientTrace(actx, trace), p.method, p.url, http.NoBody)
	if err != nil {
		return &Response{Failure: lifecycle.NewFailure(lifecycle.CodeRequestBuild, 0, "%v", err)}, nil
	}
	hreq.Header = p.header.Clone()
	if p.body != nil {
		progress := func() { wd.touch(PhaseUpload) }
		hreq.Body = newUploadBody(p.body, progress)
		hreq.GetBody = func() (io.ReadCloser, error) { return newUploadBody(p.body, progress), nil }
		hreq.ContentLength = int64(len(p.body))
	}

	client := st.http
	if p.h2c {
		client = st.h2c
	}
	resp, err := client.Do(hreq)
	if err != nil {
		out := &Response{Failure: c.callFailure(ctx, actx, 0, err)}
		if out.Failure.Code == lifecycle.CodeNetworkError && transportRetriable(actx, err) {
			return out, err
		}
		return out, nil
	}
	defer resp.Body.Close()

	now := time.Now()
	out := &Response{Status: resp.StatusCode, RequestID: resp.Header.Get("X-Request-Id"),
		Limits: ratelimit.ParseHeaders(resp.Header, resp.StatusCode, now)}
	if out.Limits.HoldFor > 0 {
		out.RetryAfter = out.Limits.HoldFor // retry-after-ms, else Retry-After
	} else if ra := resp.Header.Get("Retry-After"); ra != "" {
		if d, ok := lifecycle.ParseRetryAfter(ra, now); ok {
			out.RetryAfter = d
		}
	}
	body := &limitedReader{r: resp.Body, limit: st.cfg.MaxResponseBytes}
	sse := resp.StatusCode < 400 && isEventStream(resp.Header.Get("Content-Type"))
	if sse {
		out.Body, out.Status, err = readStream(body, wd, to.Idle)
	} else {
		wd.arm(PhaseIdle, to.Idle) // a streaming request answered without SSE
		out.Body, err = readBody(body, resp.ContentLength, st.cfg.MaxResponseBytes, wd)
	}
	if tl := (*tooLargeError)(nil); errors.As(err, &tl) {
		// Not retriable: the same request would bring the same answer.
		out.Body = nil
		out.Failure = lifecycle.NewFailure(lifecycle.CodeNonRetriableStatus, out.Status, "%s", tl.Error())
		return out, nil
	}
	if err != nil {
		if errors.Is(err, ErrStreamTruncated) {
			// The 200 is noted in the message; the partial body is no answer.
			out.Status, out.Body = 0, nil
		}
		out.Failure = c.callFailure(ctx, actx, out.Status, err)
		return out, nil
	}
	out.Failure = classify(st.cfg.Retry, out.Status)
	return out, nil
}

// callFailure classifies an error of a started attempt: the caller's
// cancellation, one of our timeouts, or a network error.
func (c *Client) callFailure(ctx, actx context.Context, status int, err error) *lifecycle.Failure {
	if ctx.Err() != nil {
		f := terminated(ctx)
		f.Status = status
		return f
	}
	if actx.Err() != nil {
		cause := context.Cause(actx)
		var te *TimeoutError
		if errors.As(cause, &te) {
			return lifecycle.NewFailure(lifecycle.CodeTimeout, status, "%s", te.Error())
		}
		return lifecycle.NewFailure(lifecycle.CodeTaskTerminated, status, "call aborted: %v", cause)
	}
	return lifecycle.NewFailure(lifecycle.CodeNetworkError, status, "%s", describeNetErr(err))
}

// describeNetErr strips the method and URL net/http prepends, keeping the
// cause ("dial tcp …: connection refused").
func describeNetErr(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) && ue.Err != nil {
		return ue.Err.Error()
	}
	return err.Error()
}

// classify maps a status to a failure; 3xx (redirects are not followed) is
// a non-retriable failure rather than a success.
func classify(p lifecycle.RetryPolicy, status int) *lifecycle.Failure {
	if status >= 300 && status < 400 {
		return lifecycle.NewFailure(lifecycle.CodeNonRetriableStatus, status, "upstream redirected with %d (redirects are not followed)", status)
	}
	return p.ClassifyStatus(status)
}

func isEventStream(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	return err == nil && mt == contentTypeEventStream
}

// readBody reads a non-SSE body (already limited to max bytes), each read
// counting as progress; a declared length over max fails before reading.
func readBody(body io.Reader, length, maxBytes int64, wd *watchdog) ([]byte, error) {
	if length > maxBytes {
		return nil, &tooLargeError{limit: maxBytes}
	}
	var buf bytes.Buffer
	if length > 0 {
		buf.Grow(int(length) + bytes.MinRead)
	}
	_, err := buf.ReadFrom(&progressReader{r: body, wd: wd})
	return buf.Bytes(), err
}

type progressReader struct {
	r  io.Reader
	wd *watchdog
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	if n > 0 {
		p.wd.touch(PhaseIdle)
	}
	return n, err
}

// readStream reads an SSE body and returns the reassembled JSON and the
// effective status: an `{"error":…}` event turns the 200 into its code and
// its data becomes the body. The first event ends the first-byte phase;
// every later one resets the idle timer.
//
// A stream that ends without "data: [DONE]" is complete only if it is an
// unknown shape (nothing to check) or every choice of a completion stream
// carries a finish_reason; otherwise it was cut off and errStreamTruncated
// is returned: a partial generation is never a success.
func readStream(body io.Reader, wd *watchdog, idle time.Duration) ([]byte, int, error) {
	r := newSSEReader(body)
	asm := newReassembler()
	events := 0
	for first := true; ; first = false {
		data, err := r.next()
		if errors.Is(err, io.EOF) {
			if !asm.done && !asm.finished() {
				return nil, http.StatusOK, &truncatedError{events: events}
			}
			return asm.result(), http.StatusOK, nil
		}
		if err != nil {
			return asm.result(), http.StatusOK, fmt.Errorf("read event stream: %w", err)
		}
		if first {
			wd.arm(PhaseIdle, idle)
		} else {
			wd.touch(PhaseIdle)
		}
		if code, ok := sseErrorStatus(data); ok {
			return data, code, nil
		}
		events++
		asm.add(data)
	}
}
