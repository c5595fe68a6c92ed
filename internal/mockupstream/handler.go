package mockupstream

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"strconv"
)

// Endpoints served.
const (
	PathChatCompletions = "/v1/chat/completions"
	PathCompletions     = "/v1/completions"
	PathEmbeddings      = "/v1/embeddings"
	// PathCallLog answers GET with the calls received and answered per
	// request id (CallLog), as JSON.
	PathCallLog = "/mock/calls"
)

// apiRequest is what the mock reads from a request body.
type apiRequest struct {
	Model         string `json:"model"`
	Stream        bool   `json:"stream"`
	StreamOptions *struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
	Input    json.RawMessage `json:"input"`
	Messages json.RawMessage `json:"messages"`
	Prompt   json.RawMessage `json:"prompt"`
}

// promptBytes is the size of the prompt parts of the request (not of
// options such as "stream"), so the streamed and plain answers to the same
// prompt report the same usage.
func (r apiRequest) promptBytes() int { return len(r.Input) + len(r.Messages) + len(r.Prompt) }

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	if !s.enter() {
		http.Error(w, "closing", http.StatusServiceUnavailable)
		return
	}
	defer s.handlers.Done()

	switch r.URL.Path {
	case "/mock/stats":
		s.serveStats(w)
		return
	case PathCallLog:
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(s.CallLog())
		return
	case PathChatCompletions, PathCompletions, PathEmbeddings:
	default:
		writeError(w, http.StatusNotFound, "invalid_request_error", "unknown path "+r.URL.Path)
		return
	}
	if r.Method != http.MethodPost {
		writeError(w, http.StatusMethodNotAllowed, "invalid_request_error", "use POST")
		return
	}
	requestID := r.Header.Get("X-Salvo-Request-Id")
	if requestID == "" {
		requestID = r.Header.Get("X-Request-Id")
	}
	if requestID == "" {
		requestID = "anon-" + strconv.FormatInt(s.total.Load()+1, 10)
	}

	// The request's own script decides upload stalls, before the model is known.
	s.mu.Lock()
	pre := s.scripts[requestID].merge(s.opts.Script)
	s.mu.Unlock()
	body, ok := s.readUpload(r, pre.Stall)
	if !ok {
		abort()
	}
	var req apiRequest
	if err := json.Unmarshal(body, &req); err != nil || req.Model == "" {
		s.total.Add(1)
		writeError(w, http.StatusBadRequest, "invalid_request_error", "body must be JSON with a model")
		return
	}
	n, sc := s.begin(requestID, req.Model, r, body)
	defer s.end(req.Model)
	if s.opts.OnRequest != nil {
		s.opts.OnRequest(r, requestID, req.Model)
	}
	lat := s.latency(sc)
	if s.opts.Knee > 0 {
		lat = kneeLatency(lat, s.opts.Knee, s.Concurrent(req.Model))
	}
	words := sc.ReplyWords
	if words <= 0 {
		words = ReplyWordsDefault
	}
	if !s.limits.admit(w, r, req.Model, int64(max(req.promptBytes()/4, 1)+words)) {
		writeError(w, http.StatusTooManyRequests, "rate_limit_error", "mock: rate limit reached for "+req.Model)
		return
	}
	if !s.pause(r.Context(), lat) {
		abort()
	}
	status := s.decide(n, sc)
	stall := Stall{}
	if sc.Stall != nil {
		stall = *sc.Stall
	}
	if status == StatusReset {
		resetConn(w)
		return
	}
	if !s.pause(r.Context(), stall.BeforeHeaders) {
		abort()
	}
	w.Header().Set("X-Request-Id", requestID)
	if status != http.StatusOK {
		if status == http.StatusTooManyRequests {
			ra := RetryAfterDefault
			if sc.Failures != nil && sc.Failures.RetryAfter > 0 {
				ra = sc.Failures.RetryAfter
			}
			w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(ra.Seconds()))))
		}
		writeError(w, status, errorType(status), fmt.Sprintf("mock: scripted status %d for %s", status, requestID))
		return
	}
	s.answer(requestID)
	c := completion{id: requestID, model: req.Model, created: s.opts.Clock().Unix(),
		words: sc.ReplyWords, promptBytes: req.promptBytes()}
	if c.words <= 0 {
		c.words = ReplyWordsDefault
	}
	switch {
	case r.URL.Path == PathEmbeddings:
		s.writeBody(r, w, stall, c.embeddings(req.Input))
	case req.Stream:
		chat := r.URL.Path == PathChatCompletions
		usage := req.StreamOptions != nil && req.StreamOptions.IncludeUsage
		s.writeStream(r, w, sc, stall, c.chunks(chat, usage))
	case r.URL.Path == PathChatCompletions:
		s.writeBody(r, w, stall, c.chat())
	default:
		s.writeBody(r, w, stall, c.text())
	}
}

// readUpload reads the request body, honouring upload stalls.
func (s *Server) readUpload(r *http.Request, st *Stall) ([]byte, bool) {
	if st != nil && !s.pause(r.Context(), st.UploadDelay) {
		return nil, false
	}
	if st == nil || st.UploadReadChunk <= 0 {
		b, err := io.ReadAll(r.Body)
		return b, err == nil
	}
	var buf bytes.Buffer
	chunk := make([]byte, st.UploadReadChunk)
	for {
		m, err := io.ReadFull(r.Body, chunk)
		buf.Write(chunk[:m])
		if err != nil {
			return buf.Bytes(), err == io.EOF || err == io.ErrUnexpectedEOF //nolint:errorlint // io.ReadFull returns these unwrapped
		}
		if !s.pause(r.Context(), st.UploadReadInterval) {
			return nil, false
		}
	}
}

// writeBody writes a JSON answer, dripping it when the stall asks for it.
func (s *Server) writeBody(r *http.Request, w http.ResponseWriter, st Stall, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	if st.DripInterval <= 0 {
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		_, _ = w.Write(body)
		return
	}
	step := st.DripChunk
	if step <= 0 {
		step = 1
	}
	fl, _ := w.(http.Flusher)
	for i := 0; i < len(body); i += step {
		end := min(i+step, len(body))
		if _, err := w.Write(body[i:end]); err != nil {
			return
		}
		if fl != nil {
			fl.Flush()
		}
		if end < len(body) && !s.pause(r.Context(), st.DripInterval) {
			return
		}
	}
}

// writeStream writes SSE chunks with the scripted pauses and error event.
func (s *Server) writeStream(r *http.Request, w http.ResponseWriter, sc Script, st Stall, chunks [][]byte) {
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	fl, _ := w.(http.Flusher)
	flush := func() {
		if fl != nil {
			fl.Flush()
		}
	}
	flush()
	if !s.pause(r.Context(), st.BeforeFirstEvent) {
		abort()
	}
	for i, ch := range chunks {
		if sc.StreamErrorAfter > 0 && i == sc.StreamErrorAfter {
			code := sc.StreamErrorCode
			if code == 0 {
				code = http.StatusInternalServerError
			}
			ev := fmt.Sprintf(`{"error":{"message":"mock: stream failed","type":%q,"param":null,"code":%d}}`, errorType(code), code)
			_, _ = fmt.Fprintf(w, "data: %s\n\n", ev)
			flush()
			return
		}
		if sc.StreamCutAfter > 0 && i == sc.StreamCutAfter {
			return
		}
		if _, err := fmt.Fprintf(w, "data: %s\n\n", ch); err != nil {
			return
		}
		flush()
		pause := sc.ChunkDelay
		if i == 0 && st.MidStream > 0 {
			pause = st.MidStream
		}
		if !s.pause(r.Context(), pause) {
			abort()
		}
	}
	_, _ = io.WriteString(w, "data: [DONE]\n\n")
	flush()
}

// abort ends a call whose stall was cut short (client gone, server
// closing) without sending anything more: net/http drops the connection
// instead of completing the response.
func abort() { panic(http.ErrAbortHandler) }

// resetConn drops the connection with a TCP RST before any status line.
func resetConn(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic(http.ErrAbortHandler) // HTTP/2: abort the stream instead
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		return
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = conn.Close()
}

func errorType(status int) string {
	switch {
	case status == http.StatusTooManyRequests:
		return "rate_limit_error"
	case status >= 500:
		return "server_error"
	}
	return "invalid_request_error"
}

func writeError(w http.ResponseWriter, status int, typ, msg string) {
	body, _ := json.Marshal(map[string]any{"error": map[string]any{
		"message": msg, "type": typ, "param": nil, "code": strconv.Itoa(status)}})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
