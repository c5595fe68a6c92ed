package mockupstream

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// answer is what post read; the response body is already closed.
type answer struct {
	StatusCode int
	Header     http.Header
}

func post(t *testing.T, c *http.Client, url, rid, body string) (answer, []byte, error) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, url, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("X-Salvo-Request-Id", rid)
	resp, err := c.Do(req)
	if err != nil {
		return answer{}, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return answer{StatusCode: resp.StatusCode, Header: resp.Header}, b, err
}

func client(t *testing.T) *http.Client {
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

func TestCompletionBodiesEchoRequestAndModel(t *testing.T) {
	t.Parallel()
	s := newTest(t, Options{Clock: func() time.Time { return time.Unix(42, 0) }})
	c := client(t)
	for path, object := range map[string]string{
		PathChatCompletions: "chat.completion", PathCompletions: "text_completion", PathEmbeddings: "list",
	} {
		resp, body, err := post(t, c, s.URL()+path, "rid-1", `{"model":"m/x:1","messages":[{"role":"user","content":"hi"}],"input":"a"}`)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.Equal(t, "rid-1", resp.Header.Get("X-Request-Id"))
		var m map[string]any
		require.NoError(t, json.Unmarshal(body, &m), string(body))
		require.Equal(t, object, m["object"])
		require.Equal(t, "m/x:1", m["model"])
		require.NotNil(t, m["usage"])
		if path != PathEmbeddings {
			require.Contains(t, m["id"], "rid-1")
			require.InDelta(t, 42, m["created"], 0)
		}
	}
	require.Equal(t, int64(3), s.Calls())
	require.Equal(t, 3, s.CallsFor("rid-1"))
	resp, _, err := post(t, c, s.URL()+"/v1/unknown", "rid-2", `{}`)
	require.NoError(t, err)
	require.Equal(t, http.StatusNotFound, resp.StatusCode)
}

func TestSequenceAndRetryAfter(t *testing.T) {
	t.Parallel()
	s := newTest(t, Options{Script: Script{Sequence: []int{429, 503}}})
	s.SetSequence("special", 499, StatusReset, 200)
	c := client(t)
	body := `{"model":"m"}`
	var got []int
	for range 3 {
		resp, _, err := post(t, c, s.URL()+PathChatCompletions, "plain", body)
		require.NoError(t, err)
		got = append(got, resp.StatusCode)
		if resp.StatusCode == http.StatusTooManyRequests {
			require.Equal(t, "1", resp.Header.Get("Retry-After"))
		}
	}
	require.Equal(t, []int{429, 503, 200}, got)

	resp, _, err := post(t, c, s.URL()+PathChatCompletions, "special", body)
	require.NoError(t, err)
	require.Equal(t, 499, resp.StatusCode)
	_, _, err = post(t, c, s.URL()+PathChatCompletions, "special", body)
	require.Error(t, err, "connection reset before the status line")
	resp, _, err = post(t, c, s.URL()+PathChatCompletions, "special", body)
	require.NoError(t, err)
	require.Equal(t, 200, resp.StatusCode)
	require.Equal(t, 3, s.CallsFor("special"))

	// The call log, read as another process would, tells the calls from
	// the answers paid for.
	log, err := FetchCallLog(t.Context(), s.URL())
	require.NoError(t, err)
	require.Equal(t, map[string]CallCount{"plain": {Calls: 3, Answered: 1}, "special": {Calls: 3, Answered: 1}}, log)
}

func TestFailureMixIsSeededAndProportional(t *testing.T) {
	t.Parallel()
	counts := func() map[int]int {
		s := newTest(t, Options{Seed: 9, Script: Script{Failures: &FailureMix{RateLimited: 0.2, ServerError: 0.1, Unavailable: 0.1}}})
		c := client(t)
		out := map[int]int{}
		for i := range 200 {
			resp, _, err := post(t, c, s.URL()+PathChatCompletions, "r"+string(rune('a'+i%26)), `{"model":"m"}`)
			require.NoError(t, err)
			out[resp.StatusCode]++
		}
		return out
	}
	a, b := counts(), counts()
	require.Equal(t, a, b, "same seed, same draws")
	require.InDelta(t, 40, a[429], 20)
	require.InDelta(t, 120, a[200], 30)
}

func TestStreamAndConcurrencyCounters(t *testing.T) {
	t.Parallel()
	s := newTest(t, Options{Models: map[string]Script{"slow": {Latency: &Latency{Min: 200 * time.Millisecond}}}})
	c := client(t)
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _, _ = post(t, c, s.URL()+PathChatCompletions, "c"+string(rune('0'+i)), `{"model":"slow"}`)
		}()
	}
	require.Eventually(t, func() bool { return s.MaxConcurrent("slow") == 4 }, 10*time.Second, time.Millisecond)
	wg.Wait()
	require.Equal(t, 0, s.Concurrent("slow"))

	resp, body, err := post(t, c, s.URL()+PathChatCompletions, "st", `{"model":"m","stream":true,"stream_options":{"include_usage":true}}`)
	require.NoError(t, err)
	require.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))
	sc := bufio.NewScanner(bytes.NewReader(body))
	var events []string
	for sc.Scan() {
		if d, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			events = append(events, d)
		}
	}
	require.Equal(t, "[DONE]", events[len(events)-1])
	require.Contains(t, events[0], `"role":"assistant"`)
	require.Contains(t, events[len(events)-2], `"usage"`)
}

func TestCloseEndsStalledCalls(t *testing.T) {
	t.Parallel()
	arrived := make(chan struct{})
	s, err := New(Options{Script: Script{Stall: &Stall{BeforeHeaders: time.Hour}},
		OnRequest: func(*http.Request, string, string) { close(arrived) }})
	require.NoError(t, err)
	c := client(t)
	done := make(chan error, 1)
	go func() { _, _, err := post(t, c, s.URL()+PathChatCompletions, "x", `{"model":"m"}`); done <- err }()
	<-arrived
	closed := make(chan struct{})
	go func() { s.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Close hung on a stalled call")
	}
	require.Error(t, <-done)
	s.Close() // twice is fine
}

// newTest starts a server for t and closes it when t ends (the package's
// own tests cannot use internal/testupstream, which imports this package).
func newTest(t *testing.T, opts Options) *Server {
	t.Helper()
	s, err := New(opts)
	if err != nil {
		t.Fatalf("mockupstream: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}
