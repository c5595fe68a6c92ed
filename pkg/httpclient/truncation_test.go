package httpclient

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/salvo-run/salvo/internal/mockupstream"
	"github.com/salvo-run/salvo/pkg/lifecycle"
)

// A stream the upstream ends after a few chunks, without [DONE] and before
// the finish chunk, is a retriable network error, never a success with the
// partial text.
func TestStreamCutOffIsNetworkError(t *testing.T) {
	t.Parallel()
	c, b := setup(t, mockupstream.Options{}, nil)
	for _, path := range []string{mockupstream.PathChatCompletions, mockupstream.PathCompletions} {
		req := chatRequest("r-cut"+strings.ReplaceAll(path, "/", "-"), map[string]any{"prompt": "say hi", "stream": true})
		req.URL = path
		b.mock.Script(req.ID, mockupstream.Script{StreamCutAfter: 3})
		resp := doWithin(t, c, t.Context(), req, Call{}, 10*time.Second)
		require.NotNil(t, resp.Failure, path)
		require.Equal(t, lifecycle.CodeNetworkError, resp.Failure.Code, path)
		require.True(t, resp.Failure.Code.Retriable(), path)
		require.Equal(t, 0, resp.Status, path)
		require.Nil(t, resp.Body, path)
		require.Contains(t, resp.Failure.Message, "200", path)
		require.Contains(t, resp.Failure.Message, "3 events", path)
		require.Equal(t, 1, b.mock.CallsFor(req.ID), "a status line arrived: no in-process retry")
	}
}

// Streams ending at EOF: [DONE] or a finish_reason on every choice make a
// whole answer; anything less, or an unterminated last event, does not.
func TestStreamEndWithoutDone(t *testing.T) {
	t.Parallel()
	chunk := func(idx int, content, finish string) string {
		f := "null"
		if finish != "" {
			f = `"` + finish + `"`
		}
		return `data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":` +
			string(rune('0'+idx)) + `,"delta":{"content":"` + content + `"},"finish_reason":` + f + `}]}` + "\n\n"
	}
	for _, tc := range []struct {
		name string
		body string
		ok   bool
	}{
		{"done", chunk(0, "a", "") + "data: [DONE]\n\n", true},
		{"finished without done", chunk(0, "a", "stop"), true},
		{"no finish", chunk(0, "a", ""), false},
		{"one of two choices finished", chunk(0, "a", "stop") + chunk(1, "b", ""), false},
		{"unterminated last event", chunk(0, "a", "") + strings.TrimSuffix(chunk(0, "", "stop"), "\n\n"), false},
		{"unterminated done", chunk(0, "a", "") + "data: [DONE]", false},
		{"no events", ": keep-alive\n\n", false},
		{"unknown shape", "data: {\"type\":\"x\"}\n\n", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body, status, err := readStream(strings.NewReader(tc.body), newWatchdog(func(error) {}), time.Hour)
			require.Equal(t, http.StatusOK, status)
			if tc.ok {
				require.NoError(t, err)
				require.NotEmpty(t, body)
				return
			}
			require.ErrorIs(t, err, ErrStreamTruncated)
			require.Nil(t, body)
		})
	}
}

// An upstream that closes the stream in the middle of an event line.
func TestStreamCutMidEventOverHTTP(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, `data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"a"},"finish_reason":null}]}`+"\n\n")
		_, _ = io.WriteString(w, `data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}`)
	}))
	t.Cleanup(srv.Close)
	c, _ := setup(t, mockupstream.Options{}, func(cfg *Config) {
		cfg.Routes = map[string]Route{testModel: {BaseURL: srv.URL}}
	})
	resp := doWithin(t, c, t.Context(), chatRequest("r-mid", map[string]any{"stream": true}), Call{}, 10*time.Second)
	require.NotNil(t, resp.Failure)
	require.Equal(t, lifecycle.CodeNetworkError, resp.Failure.Code)
	require.True(t, errors.Is(&truncatedError{}, ErrStreamTruncated))
}
