package lifecycle_test

import (
	"math/rand"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/salvo-run/salvo/pkg/lifecycle"
)

// midRand returns a rnd that yields 0.5, i.e. no jitter at all.
func midRand() float64 { return 0.5 }

var t0 = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

func TestIsRetriableStatusDefaults(t *testing.T) {
	p := lifecycle.DefaultRetryPolicy()
	tests := []struct {
		status int
		want   bool
	}{
		{200, false}, {201, false}, {204, false}, {301, false}, {399, false},
		{400, false}, {401, false}, {403, false}, {409, false}, {413, false},
		{422, false}, {498, false},
		{404, true}, {408, true}, {429, true}, {499, true},
		{500, true}, {502, true}, {503, true}, {504, true}, {529, true}, {599, true},
	}
	for _, tt := range tests {
		require.Equal(t, tt.want, p.IsRetriableStatus(tt.status), "status %d", tt.status)
	}
}

func TestExtraRetriableStatuses(t *testing.T) {
	tests := []struct {
		name  string
		extra []int
		want  map[int]bool
	}{
		{"nil means default [499]", nil, map[int]bool{499: true, 498: false, 409: false, 503: true}},
		{"empty list disables 499", []int{}, map[int]bool{499: false, 498: false, 503: true, 404: true}},
		{"custom list", []int{409, 425}, map[int]bool{409: true, 425: true, 499: false, 400: false}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := lifecycle.RetryPolicy{ExtraRetriableStatuses: tt.extra}.WithDefaults()
			require.NoError(t, p.Validate())
			for status, want := range tt.want {
				require.Equal(t, want, p.IsRetriableStatus(status), "status %d", status)
			}
		})
	}
}

func TestClassifyStatus(t *testing.T) {
	p := lifecycle.DefaultRetryPolicy()
	tests := []struct {
		status int
		code   lifecycle.FailureCode // "" means success (nil failure)
	}{
		{200, ""}, {204, ""}, {304, ""},
		{400, lifecycle.CodeNonRetriableStatus},
		{401, lifecycle.CodeNonRetriableStatus},
		{403, lifecycle.CodeNonRetriableStatus},
		{422, lifecycle.CodeNonRetriableStatus},
		{498, lifecycle.CodeNonRetriableStatus},
		{404, lifecycle.CodeRetriableStatus},
		{408, lifecycle.CodeRetriableStatus},
		{429, lifecycle.CodeRetriableStatus},
		{499, lifecycle.CodeRetriableStatus},
		{500, lifecycle.CodeRetriableStatus},
		{503, lifecycle.CodeRetriableStatus},
	}
	for _, tt := range tests {
		f := p.ClassifyStatus(tt.status)
		if tt.code == "" {
			require.Nil(t, f, "status %d", tt.status)
			continue
		}
		require.NotNil(t, f, "status %d", tt.status)
		require.Equal(t, tt.code, f.Code, "status %d", tt.status)
		require.Equal(t, tt.status, f.Status)
		require.Equal(t, tt.code.Retriable(), f.Retriable())
	}
}

// TestStatusSequenceRetriesTwiceThenCompletes drives Decide through the
// upstream answers 499, 503, 200 the way the worker does.
func TestStatusSequenceRetriesTwiceThenCompletes(t *testing.T) {
	p := lifecycle.DefaultRetryPolicy()
	now := t0
	expires := t0.Add(24 * time.Hour)
	attempt, retries := 0, 0
	final := lifecycle.StatePending
	for _, status := range []int{499, 503, 200} {
		f := p.ClassifyStatus(status)
		if f == nil {
			final = lifecycle.StateCompleted
			break
		}
		d, err := p.Decide(lifecycle.RetryInput{Attempt: attempt, Failure: f, Now: now, ExpiresAt: expires}, midRand)
		require.NoError(t, err)
		require.True(t, d.Retry, "status %d must be retried", status)
		require.Equal(t, lifecycle.DenyNone, d.Denied)
		require.Equal(t, p.BaseDelay(attempt), d.Delay)
		require.Equal(t, now.Add(d.Delay), d.NotBefore)
		retries++
		attempt++
		now = d.NotBefore
	}
	require.Equal(t, 2, retries)
	require.Equal(t, lifecycle.StateCompleted, final)
}

func TestBaseDelayGrowthAndCap(t *testing.T) {
	p := lifecycle.DefaultRetryPolicy()
	want := []time.Duration{
		1 * time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second,
		16 * time.Second, 32 * time.Second, 60 * time.Second, 60 * time.Second,
	}
	for n, w := range want {
		require.Equal(t, w, p.BaseDelay(n), "attempt %d", n)
	}
	// Huge exponents must not overflow into negative or zero delays.
	for _, n := range []int{63, 64, 1000, 1 << 30} {
		require.Equal(t, p.MaxBackoff, p.BaseDelay(n), "attempt %d", n)
	}
	require.Equal(t, p.Backoff, p.BaseDelay(-3), "negative attempt counts as 0")

	custom := lifecycle.RetryPolicy{Backoff: 100 * time.Millisecond, BackoffFactor: 3, MaxBackoff: 2 * time.Second}.WithDefaults()
	require.NoError(t, custom.Validate())
	require.Equal(t, 100*time.Millisecond, custom.BaseDelay(0))
	require.Equal(t, 300*time.Millisecond, custom.BaseDelay(1))
	require.Equal(t, 900*time.Millisecond, custom.BaseDelay(2))
	require.Equal(t, 2*time.Second, custom.BaseDelay(3))
}

func TestDelayJitterBounds(t *testing.T) {
	p := lifecycle.DefaultRetryPolicy()
	rng := rand.New(rand.NewSource(42)) //nolint:gosec // deterministic test randomness
	for attempt := 0; attempt < 10; attempt++ {
		base := p.BaseDelay(attempt)
		lo := time.Duration(float64(base) * 0.75)
		hi := time.Duration(float64(base) * 1.25)
		var below, above bool
		for i := 0; i < 2000; i++ {
			d := p.Delay(attempt, rng.Float64)
			require.GreaterOrEqual(t, d, lo, "attempt %d", attempt)
			require.LessOrEqual(t, d, hi, "attempt %d", attempt)
			below = below || d < base
			above = above || d > base
		}
		// The jitter really spreads both ways.
		require.True(t, below && above, "attempt %d: jitter must go both ways", attempt)
	}
	// The cap holds after jitter: never more than 125 % of max_backoff.
	require.LessOrEqual(t, p.Delay(100, func() float64 { return 0.999999 }), p.MaxBackoff*5/4)
	// Extreme rnd values stay inside the band.
	require.Equal(t, 750*time.Millisecond, p.Delay(0, func() float64 { return 0 }))
	require.Equal(t, time.Second, p.Delay(0, nil), "nil rnd means no jitter")
}

func TestApplyJitter(t *testing.T) {
	require.Equal(t, time.Second, lifecycle.ApplyJitter(time.Second, 0, func() float64 { return 0 }))
	require.Equal(t, 500*time.Millisecond, lifecycle.ApplyJitter(time.Second, 0.5, func() float64 { return 0 }))
	require.Equal(t, time.Second, lifecycle.ApplyJitter(time.Second, 0.5, midRand))
}

func TestMaxRetries(t *testing.T) {
	fail := lifecycle.NewFailure(lifecycle.CodeRetriableStatus, 503, "upstream answered 503")
	tests := []struct {
		name    string
		policy  lifecycle.RetryPolicy
		attempt int
		retry   bool
	}{
		{"zero disables retries", lifecycle.RetryPolicy{}.WithMaxRetries(0).WithDefaults(), 0, false},
		{"two: first failure retried", lifecycle.RetryPolicy{}.WithMaxRetries(2).WithDefaults(), 0, true},
		{"two: second failure retried", lifecycle.RetryPolicy{}.WithMaxRetries(2).WithDefaults(), 1, true},
		{"two: third failure final", lifecycle.RetryPolicy{}.WithMaxRetries(2).WithDefaults(), 2, false},
		{"default is 1000", lifecycle.DefaultRetryPolicy(), 999, true},
		{"default stops at 1000", lifecycle.DefaultRetryPolicy(), 1000, false},
		{"no limit", lifecycle.RetryPolicy{MaxRetries: lifecycle.NoRetryLimit}.WithDefaults(), 1 << 20, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.NoError(t, tt.policy.Validate())
			d, err := tt.policy.Decide(lifecycle.RetryInput{Attempt: tt.attempt, Failure: fail, Now: t0}, midRand)
			require.NoError(t, err)
			require.Equal(t, tt.retry, d.Retry)
			if !tt.retry {
				require.Equal(t, lifecycle.DenyMaxRetries, d.Denied)
			}
		})
	}
}

func TestDecideNotRetriable(t *testing.T) {
	p := lifecycle.DefaultRetryPolicy()
	for _, code := range lifecycle.FailureCodes {
		d, err := p.Decide(lifecycle.RetryInput{Failure: &lifecycle.Failure{Code: code}, Now: t0}, midRand)
		require.NoError(t, err)
		require.Equal(t, code.Retriable(), d.Retry, "code %s", code)
		if !code.Retriable() {
			require.Equal(t, lifecycle.DenyNotRetriable, d.Denied, "code %s", code)
		}
	}
	_, err := p.Decide(lifecycle.RetryInput{Now: t0}, midRand)
	require.ErrorIs(t, err, lifecycle.ErrNoFailure)
}

func TestDecideDeadline(t *testing.T) {
	p := lifecycle.RetryPolicy{StopBeforeDeadline: 10 * time.Minute}.WithDefaults()
	require.NoError(t, p.Validate())
	fail := lifecycle.NewFailure(lifecycle.CodeRetriableStatus, 503, "upstream answered 503")
	// attempt 0 → base delay 1 s; no jitter with midRand.
	cutoff := t0.Add(time.Hour)                 // expires_at − stop_before_deadline
	expires := cutoff.Add(p.StopBeforeDeadline) // the request's deadline
	tests := []struct {
		name   string
		now    time.Time
		expiry time.Time
		retry  bool
	}{
		{"well before", t0, expires, true},
		{"just before the cutoff", cutoff.Add(-time.Second - time.Nanosecond), expires, true},
		{"exactly at the cutoff", cutoff.Add(-time.Second), expires, false},
		{"just after the cutoff", cutoff.Add(-time.Second + time.Nanosecond), expires, false},
		{"inside the stop window", cutoff.Add(time.Minute), expires, false},
		{"past the deadline", expires.Add(time.Minute), expires, false},
		{"no deadline", t0.Add(1000 * time.Hour), time.Time{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := p.Decide(lifecycle.RetryInput{Failure: fail, Now: tt.now, ExpiresAt: tt.expiry}, midRand)
			require.NoError(t, err)
			require.Equal(t, tt.retry, d.Retry)
			require.Equal(t, time.Second, d.Delay)
			require.Equal(t, tt.now.Add(time.Second), d.NotBefore)
			if tt.retry {
				require.Equal(t, lifecycle.DenyNone, d.Denied)
			} else {
				require.Equal(t, lifecycle.DenyDeadline, d.Denied)
			}
		})
	}
}

func TestRetryAllowedAt(t *testing.T) {
	p := lifecycle.RetryPolicy{StopBeforeDeadline: time.Minute}.WithDefaults()
	expires := t0.Add(time.Hour)
	require.True(t, p.RetryAllowedAt(expires.Add(-time.Minute-time.Nanosecond), expires))
	require.False(t, p.RetryAllowedAt(expires.Add(-time.Minute), expires))
	require.False(t, p.RetryAllowedAt(expires, expires))
	require.True(t, p.RetryAllowedAt(t0.Add(1e6*time.Hour), time.Time{}))
	// Without stop_before_deadline the deadline itself is the cutoff.
	zero := lifecycle.DefaultRetryPolicy()
	require.True(t, zero.RetryAllowedAt(expires.Add(-time.Nanosecond), expires))
	require.False(t, zero.RetryAllowedAt(expires, expires))
}

func TestDecideRetryAfter(t *testing.T) {
	p := lifecycle.RetryPolicy{StopBeforeDeadline: time.Minute}.WithDefaults()
	fail := lifecycle.NewFailure(lifecycle.CodeRetriableStatus, 429, "upstream answered 429")
	expires := t0.Add(time.Hour)
	httpDate := func(t time.Time) string { return t.UTC().Format(http.TimeFormat) }
	tests := []struct {
		name    string
		header  string
		attempt int
		retry   bool
		delay   time.Duration
	}{
		{"seconds longer than backoff", "30", 0, true, 30 * time.Second},
		{"seconds shorter than backoff", "2", 5, true, 2 * time.Second}, // backoff would be 32 s
		{"http-date", httpDate(t0.Add(45 * time.Second)), 0, true, 45 * time.Second},
		{"http-date in the past falls back to backoff", httpDate(t0.Add(-time.Hour)), 3, true, 8 * time.Second},
		{"seconds past the cutoff denied", "3540", 0, false, 3540 * time.Second},
		{"seconds just inside the cutoff", "3539", 0, true, 3539 * time.Second},
		{"http-date past the deadline denied", httpDate(expires.Add(time.Hour)), 0, false, 2 * time.Hour},
		{"malformed header ignored", "soon", 2, true, 4 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ra, _ := lifecycle.ParseRetryAfter(tt.header, t0)
			d, err := p.Decide(lifecycle.RetryInput{
				Attempt: tt.attempt, Failure: fail, Now: t0, ExpiresAt: expires, RetryAfter: ra,
			}, midRand)
			require.NoError(t, err)
			require.Equal(t, tt.retry, d.Retry)
			require.Equal(t, tt.delay, d.Delay)
			if tt.retry {
				require.True(t, d.NotBefore.Before(expires.Add(-p.StopBeforeDeadline)), "never past the deadline")
			} else {
				require.Equal(t, lifecycle.DenyDeadline, d.Denied)
			}
		})
	}
}

func TestRetryPolicyValidate(t *testing.T) {
	base := lifecycle.DefaultRetryPolicy()
	require.NoError(t, base.Validate())
	tests := []struct {
		field  string
		mutate func(p *lifecycle.RetryPolicy)
	}{
		{"retry.backoff", func(p *lifecycle.RetryPolicy) { p.Backoff = -time.Second }},
		{"retry.backoff_factor", func(p *lifecycle.RetryPolicy) { p.BackoffFactor = 0.5 }},
		{"retry.max_backoff", func(p *lifecycle.RetryPolicy) { p.MaxBackoff = time.Millisecond }},
		{"retry.jitter", func(p *lifecycle.RetryPolicy) { p.Jitter = 1 }},
		{"retry.jitter", func(p *lifecycle.RetryPolicy) { p.Jitter = -0.1 }},
		{"retry.max_retries", func(p *lifecycle.RetryPolicy) { p.MaxRetries = -2 }},
		{"retry.stop_before_deadline", func(p *lifecycle.RetryPolicy) { p.StopBeforeDeadline = -time.Second }},
		{"retry.extra_retriable_statuses[1]", func(p *lifecycle.RetryPolicy) { p.ExtraRetriableStatuses = []int{499, 200} }},
	}
	for _, tt := range tests {
		p := base
		tt.mutate(&p)
		err := p.Validate()
		require.Error(t, err, tt.field)
		require.Contains(t, err.Error(), tt.field+":")
	}
}

func TestRetryPolicyWithDefaults(t *testing.T) {
	p := lifecycle.DefaultRetryPolicy()
	require.Equal(t, lifecycle.BackoffDefault, p.Backoff)
	require.InDelta(t, lifecycle.BackoffFactorDefault, p.BackoffFactor, 0)
	require.Equal(t, lifecycle.MaxBackoffDefault, p.MaxBackoff)
	require.InDelta(t, lifecycle.JitterDefault, p.Jitter, 0)
	require.Equal(t, lifecycle.MaxRetriesDefault, p.MaxRetries)
	require.Equal(t, []int{499}, p.ExtraRetriableStatuses)
	// The default list is copied, not shared.
	p.ExtraRetriableStatuses[0] = 418
	require.Equal(t, []int{499}, lifecycle.ExtraRetriableStatusesDefault)
	// Explicit values survive WithDefaults.
	q := lifecycle.RetryPolicy{Backoff: 5 * time.Second, MaxBackoff: 10 * time.Second}.WithMaxRetries(0).WithDefaults()
	require.Equal(t, 5*time.Second, q.Backoff)
	require.Equal(t, 0, q.MaxRetries)
}
