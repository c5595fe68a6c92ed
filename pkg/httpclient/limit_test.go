package httpclient

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/salvo-run/salvo/internal/mockupstream"
	"github.com/salvo-run/salvo/pkg/lifecycle"
)

// A body over MaxResponseBytes, plain or streamed, fails non-retriably
// with the status kept; a body of exactly the limit passes.
func TestResponseSizeIsBounded(t *testing.T) {
	t.Parallel()
	c, b := setup(t, mockupstream.Options{Script: mockupstream.Script{ReplyWords: 400}}, nil)
	plain := chatRequest("r-big", nil)
	full := doWithin(t, c, t.Context(), plain, Call{}, 10*time.Second)
	require.Nil(t, full.Failure)
	size := int64(len(full.Body))
	require.Greater(t, size, int64(1024))

	setLimit := func(n int64) {
		t.Helper()
		cfg := c.state.Load().cfg
		cfg.MaxResponseBytes = n
		require.NoError(t, c.SetConfig(cfg))
	}
	setLimit(size)
	at := doWithin(t, c, t.Context(), plain, Call{}, 10*time.Second)
	require.Nil(t, at.Failure, "a body of exactly the limit passes")
	require.Equal(t, full.Body, at.Body)

	setLimit(size - 1)
	over := doWithin(t, c, t.Context(), plain, Call{}, 10*time.Second)
	require.NotNil(t, over.Failure)
	require.Equal(t, lifecycle.CodeNonRetriableStatus, over.Failure.Code)
	require.False(t, over.Failure.Code.Retriable())
	require.Equal(t, 200, over.Status)
	require.Equal(t, 200, over.Failure.Status)
	require.Contains(t, over.Failure.Message, "response larger than")
	require.Nil(t, over.Body)

	setLimit(1024)
	streamed := chatRequest("r-big-stream", map[string]any{"stream": true})
	sr := doWithin(t, c, t.Context(), streamed, Call{}, 10*time.Second)
	require.NotNil(t, sr.Failure)
	require.Equal(t, lifecycle.CodeNonRetriableStatus, sr.Failure.Code)
	require.Equal(t, 200, sr.Status)
	require.Equal(t, "response larger than 1024 bytes (max_response_bytes)", sr.Failure.Message)
	require.Nil(t, sr.Body)
	require.Equal(t, 1, b.mock.CallsFor(streamed.ID))
}

func TestLimitedReader(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in    int
		limit int64
		over  bool
	}{{0, 1, false}, {10, 10, false}, {11, 10, true}, {1 << 20, 100, true}} {
		lr := &limitedReader{r: strings.NewReader(strings.Repeat("x", tc.in)), limit: tc.limit}
		got, err := io.ReadAll(lr)
		if tc.over {
			require.ErrorIs(t, err, ErrResponseTooLarge)
			require.LessOrEqual(t, int64(len(got)), tc.limit)
			continue
		}
		require.NoError(t, err)
		require.True(t, bytes.Equal(got, bytes.Repeat([]byte("x"), tc.in)))
	}
}

func TestMaxResponseBytesValidated(t *testing.T) {
	t.Parallel()
	cfg := Config{Routes: map[string]Route{"m": {BaseURL: "http://127.0.0.1:1"}}}.WithDefaults()
	require.Equal(t, MaxResponseBytesDefault, cfg.MaxResponseBytes)
	cfg.MaxResponseBytes = -1
	require.ErrorContains(t, cfg.Validate(), "max_response_bytes")
}
