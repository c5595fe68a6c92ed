package ratelimit_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/salvo-run/salvo/pkg/ratelimit"
)

var now = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

func header(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i < len(kv); i += 2 {
		h.Set(kv[i], kv[i+1])
	}
	return h
}

func TestParseHeaders(t *testing.T) {
	t.Parallel()
	unknown := ratelimit.Window{Limit: -1, Remaining: -1}
	for _, tc := range []struct {
		name   string
		h      http.Header
		status int
		want   map[ratelimit.Dim]ratelimit.Window
		hold   time.Duration
		seen   bool
	}{
		{name: "no headers", h: header(), status: 200},
		{name: "openai", status: 200, seen: true, h: header(
			"x-ratelimit-limit-requests", "600", "x-ratelimit-remaining-requests", "599", "x-ratelimit-reset-requests", "100ms",
			"x-ratelimit-limit-tokens", "200000", "x-ratelimit-remaining-tokens", "150000", "x-ratelimit-reset-tokens", "6m0s"),
			want: map[ratelimit.Dim]ratelimit.Window{
				ratelimit.Requests: {Limit: 600, Remaining: 599, Reset: 100 * time.Millisecond},
				ratelimit.Tokens:   {Limit: 200000, Remaining: 150000, Reset: 6 * time.Minute},
			}},
		{name: "openai fractional and compound resets", status: 200, seen: true, h: header(
			"x-ratelimit-remaining-tokens", "0", "x-ratelimit-reset-tokens", "1m30.5s", "x-ratelimit-reset-requests", "12ms"),
			want: map[ratelimit.Dim]ratelimit.Window{
				ratelimit.Requests: {Limit: -1, Remaining: -1, Reset: 12 * time.Millisecond},
				ratelimit.Tokens:   {Limit: -1, Remaining: 0, Reset: 90*time.Second + 500*time.Millisecond},
			}},
		{name: "minus one and garbage are unknown", status: 200, h: header(
			"x-ratelimit-limit-requests", "-1", "x-ratelimit-remaining-requests", "lots", "x-ratelimit-reset-requests", "soon",
			"x-ratelimit-limit-tokens", "1e9", "x-ratelimit-limit-bananas", "5", "anthropic-ratelimit-tokens-limit", " ",
			"anthropic-ratelimit-requests-reset", "yesterday", "anthropic-ratelimit-input-tokens-limit", "0")},
		{name: "anthropic", status: 200, seen: true, h: header(
			"anthropic-ratelimit-requests-limit", "50", "anthropic-ratelimit-requests-remaining", "49",
			"anthropic-ratelimit-requests-reset", now.Add(2*time.Second).Format(time.RFC3339),
			"anthropic-ratelimit-input-tokens-limit", "40000", "anthropic-ratelimit-input-tokens-remaining", "39000",
			"anthropic-ratelimit-input-tokens-reset", now.Add(-time.Minute).Format(time.RFC3339),
			"anthropic-ratelimit-output-tokens-limit", "8000", "anthropic-ratelimit-output-tokens-remaining", "7990",
			"anthropic-ratelimit-tokens-limit", "48000", "anthropic-ratelimit-tokens-remaining", "46990"),
			want: map[ratelimit.Dim]ratelimit.Window{
				ratelimit.Requests:     {Limit: 50, Remaining: 49, Reset: 2 * time.Second},
				ratelimit.InputTokens:  {Limit: 40000, Remaining: 39000}, // a reset in the past is now
				ratelimit.OutputTokens: {Limit: 8000, Remaining: 7990, Reset: 0},
				ratelimit.Tokens:       {Limit: 48000, Remaining: 46990},
			}},
		{name: "retry-after seconds on a 429", status: 429, seen: true, h: header("retry-after", "2"), hold: 2 * time.Second},
		{name: "retry-after-ms wins", status: 429, seen: true, h: header("retry-after", "2", "retry-after-ms", "1500.5"), hold: 1500*time.Millisecond + 500*time.Microsecond},
		{name: "retry-after date on a 503", status: 503, seen: true, h: header("retry-after", now.Add(3*time.Second).Format(http.TimeFormat)), hold: 3 * time.Second},
		{name: "retry-after on a 200 is no hold", status: 200, h: header("retry-after", "2")},
		{name: "garbage retry-after", status: 429, h: header("retry-after", "never", "retry-after-ms", "NaN")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			o := ratelimit.ParseHeaders(tc.h, tc.status, now)
			for d := range ratelimit.NumDims {
				want, ok := tc.want[d]
				if !ok {
					want = unknown
				}
				require.Equal(t, want, o.Windows[d], "dim %d", d)
			}
			require.Equal(t, tc.hold, o.HoldFor)
			require.Equal(t, tc.seen, o.Seen)
		})
	}
}

func TestEstimateAndUsage(t *testing.T) {
	t.Parallel()
	body := []byte(`{"model":"m","messages":[{"role":"user","content":"hello there"}],"max_completion_tokens":50,"n":2}`)
	c := ratelimit.Estimate(body, 256)
	require.Equal(t, int64((len(body)+3)/4), c.Input)
	require.Equal(t, int64(100), c.Output, "max_completion_tokens × n")
	require.Equal(t, int64(256), ratelimit.Estimate([]byte(`not json`), 256).Output)
	require.Equal(t, int64(7), ratelimit.Estimate([]byte(`{"max_tokens":7}`), 256).Output)
	require.Equal(t, ratelimit.Amounts{1, c.Input + 100, c.Input, 100}, c.Amounts())

	u, ok := ratelimit.ParseUsage([]byte(`{"usage":{"prompt_tokens":12,"completion_tokens":30,"total_tokens":42}}`))
	require.True(t, ok)
	require.Equal(t, ratelimit.Cost{Input: 12, Output: 30}, u)
	u, ok = ratelimit.ParseUsage([]byte(`{"usage":{"input_tokens":5,"output_tokens":9}}`))
	require.True(t, ok)
	require.Equal(t, ratelimit.Cost{Input: 5, Output: 9}, u)
	_, ok = ratelimit.ParseUsage([]byte(`{"error":{"message":"slow down"}}`))
	require.False(t, ok)
}
