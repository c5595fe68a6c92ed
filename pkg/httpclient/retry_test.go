package httpclient

import (
	"context"
	"math/rand/v2"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/salvo-run/salvo/internal/mockupstream"
	"github.com/salvo-run/salvo/pkg/lifecycle"
)

func TestTransportBackoffDelay_JitterBoundsAndCap(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(7, 11))
	const initial = 200 * time.Millisecond
	for attempt := 0; attempt <= 12; attempt++ {
		base := initial << attempt
		if base > TransportBackoffCap {
			base = TransportBackoffCap
		}
		lo, hi := time.Duration(float64(base)*0.75), time.Duration(float64(base)*1.25)
		minSeen, maxSeen := time.Duration(1<<62), time.Duration(0)
		for range 10_000 {
			d := TransportBackoffDelay(initial, attempt, rng.Float64)
			require.GreaterOrEqual(t, d, lo, "attempt %d", attempt)
			require.LessOrEqual(t, d, hi, "attempt %d", attempt)
			require.LessOrEqual(t, d, TransportBackoffCap, "attempt %d: cap", attempt)
			minSeen, maxSeen = min(minSeen, d), max(maxSeen, d)
		}
		// The draws really spread over the ±25 % band.
		require.Less(t, minSeen, time.Duration(float64(base)*0.77), "attempt %d", attempt)
		if base < TransportBackoffCap*3/4 {
			require.Greater(t, maxSeen, time.Duration(float64(base)*1.23), "attempt %d", attempt)
		}
	}
	// Huge attempts and initial values stay at the cap without overflow.
	for _, attempt := range []int{30, 62, 63, 64, 1000} {
		require.LessOrEqual(t, TransportBackoffDelay(TransportBackoffCap, attempt, rng.Float64), TransportBackoffCap)
		require.GreaterOrEqual(t, TransportBackoffDelay(time.Second, attempt, rng.Float64), TransportBackoffCap*3/4)
	}
	require.Equal(t, 400*time.Millisecond, TransportBackoffDelay(initial, 1, func() float64 { return 0.5 }))
}

func TestResetBeforeStatusLine_RetriedWithIdenticalBody(t *testing.T) {
	t.Parallel()
	c, b := setup(t, mockupstream.Options{}, nil)
	req := bigRequest("r-reset", 100_000)
	b.mock.SetSequence(req.ID, mockupstream.StatusReset, mockupstream.StatusReset, http.StatusOK)

	resp := c.Do(t.Context(), req, Call{})
	require.Nil(t, resp.Failure)
	require.Equal(t, http.StatusOK, resp.Status)
	require.Equal(t, 2, resp.TransportRetries)
	require.Equal(t, 3, b.mock.CallsFor(req.ID))
	got := b.mock.Received(req.ID)
	require.Len(t, got, 3)
	for i, r := range got {
		require.Equal(t, []byte(req.Body), r.Body, "call %d body", i)
		require.Equal(t, req.ID, r.Header.Get("X-Request-Id"), "call %d", i)
	}
	require.Contains(t, string(resp.Body), `"chatcmpl-r-reset"`)
}

func TestResetBeforeStatusLine_ExhaustedIsNetworkError(t *testing.T) {
	t.Parallel()
	c, b := setup(t, mockupstream.Options{}, func(cfg *Config) { cfg.TransportRetries = 2 })
	req := chatRequest("r-reset-all", nil)
	b.mock.SetSequence(req.ID, mockupstream.StatusReset, mockupstream.StatusReset, mockupstream.StatusReset, mockupstream.StatusReset)

	resp := c.Do(t.Context(), req, Call{})
	require.NotNil(t, resp.Failure)
	require.Equal(t, lifecycle.CodeNetworkError, resp.Failure.Code)
	require.Equal(t, 0, resp.Status)
	require.Equal(t, 2, resp.TransportRetries)
	require.Equal(t, 3, b.mock.CallsFor(req.ID))
}

func TestConnectionRefused_RetriedThenNetworkError(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	c, _ := setup(t, mockupstream.Options{}, func(cfg *Config) {
		cfg.Routes[testModel] = Route{BaseURL: "http://" + addr}
		cfg.TransportRetries = 3
	})
	resp := c.Do(t.Context(), chatRequest("r-refused", nil), Call{})
	require.Equal(t, lifecycle.CodeNetworkError, resp.Failure.Code)
	require.Equal(t, 3, resp.TransportRetries)
	require.Contains(t, resp.Failure.Message, "refused")
}

func TestNoTransportRetries(t *testing.T) {
	t.Parallel()
	c, b := setup(t, mockupstream.Options{}, func(cfg *Config) { cfg.TransportRetries = NoTransportRetries })
	req := chatRequest("r-noretry", nil)
	b.mock.SetSequence(req.ID, mockupstream.StatusReset, http.StatusOK)
	resp := c.Do(t.Context(), req, Call{})
	require.Equal(t, lifecycle.CodeNetworkError, resp.Failure.Code)
	require.Equal(t, 1, b.mock.CallsFor(req.ID))
}

func TestStatusesPassThroughAtOnce(t *testing.T) {
	t.Parallel()
	c, b := setup(t, mockupstream.Options{}, nil)
	cases := []struct {
		status int
		code   lifecycle.FailureCode
	}{
		{500, lifecycle.CodeRetriableStatus},
		{503, lifecycle.CodeRetriableStatus},
		{429, lifecycle.CodeRetriableStatus},
		{499, lifecycle.CodeRetriableStatus},
		{404, lifecycle.CodeRetriableStatus},
		{400, lifecycle.CodeNonRetriableStatus},
		{401, lifecycle.CodeNonRetriableStatus},
	}
	for _, tc := range cases {
		req := chatRequest("r-status-"+http.StatusText(tc.status), nil)
		b.mock.SetSequence(req.ID, tc.status, http.StatusOK)
		resp := c.Do(t.Context(), req, Call{})
		require.NotNil(t, resp.Failure, "status %d", tc.status)
		require.Equal(t, tc.code, resp.Failure.Code, "status %d", tc.status)
		require.Equal(t, tc.status, resp.Status)
		require.Equal(t, tc.status, resp.Failure.Status)
		require.Equal(t, 0, resp.TransportRetries, "status %d must not be retried in-process", tc.status)
		require.Equal(t, 1, b.mock.CallsFor(req.ID), "status %d must not be retried in-process", tc.status)
		require.Contains(t, string(resp.Body), `"error"`, "error body kept verbatim")
		require.Equal(t, req.ID, resp.RequestID)
		if tc.status == 429 {
			require.Equal(t, time.Second, resp.RetryAfter)
		}
	}
}

func TestTimeoutIsNotRetried(t *testing.T) {
	t.Parallel()
	c, b := setup(t, mockupstream.Options{}, func(cfg *Config) { cfg.Timeouts.FirstByte = 100 * time.Millisecond })
	req := chatRequest("r-timeout", nil)
	b.mock.Script(req.ID, mockupstream.Script{Stall: &mockupstream.Stall{BeforeHeaders: time.Minute}})
	resp := doWithin(t, c, t.Context(), req, Call{}, 10*time.Second)
	require.Equal(t, lifecycle.CodeTimeout, resp.Failure.Code)
	require.Equal(t, 0, resp.TransportRetries)
	require.Equal(t, 1, b.mock.CallsFor(req.ID))
}

func TestCancelDuringBackoffReturnsTerminated(t *testing.T) {
	t.Parallel()
	c, b := setup(t, mockupstream.Options{}, func(cfg *Config) { cfg.TransportBackoff = 20 * time.Second })
	req := chatRequest("r-backoff-cancel", nil)
	b.mock.SetSequence(req.ID, mockupstream.StatusReset, http.StatusOK)
	ctx, cancel := context.WithCancel(t.Context())
	go func() {
		// Cancel once the first call reached the upstream (the client is
		// then in its 20 s backoff), or after 10 s whatever happened.
		poll := time.NewTicker(time.Millisecond)
		defer poll.Stop()
		for deadline := time.Now().Add(10 * time.Second); b.mock.CallsFor(req.ID) < 1 && time.Now().Before(deadline); <-poll.C {
		}
		cancel()
	}()
	resp := doWithin(t, c, ctx, req, Call{}, 10*time.Second)
	require.Equal(t, lifecycle.CodeTaskTerminated, resp.Failure.Code)
	require.Equal(t, 1, b.mock.CallsFor(req.ID))
}
