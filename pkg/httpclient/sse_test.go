package httpclient

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/salvo-run/salvo/internal/mockupstream"
	"github.com/salvo-run/salvo/pkg/lifecycle"
)

func TestSSEReassemblyEqualsNonStreaming(t *testing.T) {
	t.Parallel()
	c, b := setup(t, mockupstream.Options{}, nil)
	for _, path := range []string{mockupstream.PathChatCompletions, mockupstream.PathCompletions} {
		id := "r-same" + strings.ReplaceAll(path, "/", "-")
		plain := chatRequest(id, map[string]any{"prompt": "say hi"})
		plain.URL = path
		streamed := chatRequest(id, map[string]any{"prompt": "say hi", "stream": true,
			"stream_options": map[string]any{"include_usage": true}})
		streamed.URL = path

		a := c.Do(t.Context(), plain, Call{})
		require.Nil(t, a.Failure, path)
		s := c.Do(t.Context(), streamed, Call{})
		require.Nil(t, s.Failure, path)
		require.Equal(t, 2, b.mock.CallsFor(id))
		require.NotContains(t, string(s.Body), "data:", path)
		require.Contains(t, string(s.Body), `"usage"`, path)
		require.JSONEq(t, string(a.Body), string(s.Body), path)
	}
}

func TestSSEErrorEventBecomesStatus(t *testing.T) {
	t.Parallel()
	c, b := setup(t, mockupstream.Options{}, nil)
	for _, tc := range []struct {
		code   int
		status int
		fcode  lifecycle.FailureCode
	}{
		{503, 503, lifecycle.CodeRetriableStatus},
		{400, 400, lifecycle.CodeNonRetriableStatus},
		{429, 429, lifecycle.CodeRetriableStatus},
	} {
		req := chatRequest("r-sse-err-"+http.StatusText(tc.code), map[string]any{"stream": true})
		b.mock.Script(req.ID, mockupstream.Script{StreamErrorAfter: 3, StreamErrorCode: tc.code})
		resp := c.Do(t.Context(), req, Call{})
		require.Equal(t, tc.status, resp.Status)
		require.Equal(t, tc.fcode, resp.Failure.Code)
		require.True(t, strings.HasPrefix(string(resp.Body), `{"error"`), string(resp.Body))
		require.Equal(t, 1, b.mock.CallsFor(req.ID))
	}
}

func TestSSEErrorStatus(t *testing.T) {
	t.Parallel()
	for data, want := range map[string]int{
		`{"error":{"code":503}}`:               503,
		`{"error":{"code":"429"}}`:             429,
		`{"error":{"code":"rate_limit"}}`:      500,
		`{"error":{"code":200}}`:               500,
		`{"error":{"code":null,"status":502}}`: 502,
		`{"error":{"message":"boom"}}`:         500,
		`{"error":not json`:                    500,
		` {"error":{"code":404,"type":"x"}}`:   404,
	} {
		got, ok := sseErrorStatus([]byte(data))
		require.True(t, ok, data)
		require.Equal(t, want, got, data)
	}
	_, ok := sseErrorStatus([]byte(`{"id":"x","error":null}`))
	require.False(t, ok)
}

func TestSSEReaderFraming(t *testing.T) {
	t.Parallel()
	in := ": keep-alive\r\nevent: message\r\ndata: {\"a\":1}\r\n\r\ndata:line1\ndata: line2\nid: 7\n\n\n\ndata: tail-without-blank-line"
	r := newSSEReader(strings.NewReader(in))
	var got []string
	for i := 0; i < 10; i++ {
		d, err := r.next()
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
		got = append(got, string(d))
	}
	// The last event has no blank line before EOF: incomplete, dropped.
	require.Equal(t, []string{`{"a":1}`, "line1\nline2"}, got)
}

func TestReassemblerToolCallsAndLogprobs(t *testing.T) {
	t.Parallel()
	a := newReassembler()
	for _, ev := range []string{
		`{"id":"c1","object":"chat.completion.chunk","created":5,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":null,"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"get_weather","arguments":""}}]},"finish_reason":null}]}`,
		`{"id":"c1","object":"chat.completion.chunk","created":5,"model":"m","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"city\":"}}]},"finish_reason":null}]}`,
		`{"id":"c1","object":"chat.completion.chunk","created":5,"model":"m","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"\"Paris\"}"}}]},"finish_reason":null}]}`,
		`{"id":"c1","object":"chat.completion.chunk","created":5,"model":"m","choices":[{"index":1,"delta":{"role":"assistant","content":"Hi"},"logprobs":{"content":[{"token":"Hi","logprob":-0.1}]},"finish_reason":null}]}`,
		`{"id":"c1","object":"chat.completion.chunk","created":5,"model":"m","choices":[{"index":1,"delta":{"content":"!"},"logprobs":{"content":[{"token":"!","logprob":-0.2}]},"finish_reason":"stop"}]}`,
		`{"id":"c1","object":"chat.completion.chunk","created":5,"model":"m","choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}`,
		`{"id":"c1","object":"chat.completion.chunk","created":5,"model":"m","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}}`,
		`[DONE]`,
	} {
		a.add([]byte(ev))
	}
	want := `{"id":"c1","object":"chat.completion","created":5,"model":"m","choices":[
	  {"index":0,"message":{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}]},"logprobs":null,"finish_reason":"tool_calls"},
	  {"index":1,"message":{"role":"assistant","content":"Hi!"},"logprobs":{"content":[{"token":"Hi","logprob":-0.1},{"token":"!","logprob":-0.2}]},"finish_reason":"stop"}],
	  "usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}}`
	require.JSONEq(t, want, string(a.result()))
}

func TestReassemblerUnknownShapeJoinsData(t *testing.T) {
	t.Parallel()
	a := newReassembler()
	a.add([]byte(`{"type":"response.output_text.delta","delta":"a"}`))
	a.add([]byte(`plain text`))
	a.add([]byte(`[DONE]`))
	require.Equal(t, "{\"type\":\"response.output_text.delta\",\"delta\":\"a\"}\nplain text", string(a.result()))
}
