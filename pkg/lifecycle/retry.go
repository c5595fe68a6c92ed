package lifecycle

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// Retry policy defaults.
const (
	BackoffDefault            = time.Second
	BackoffFactorDefault      = 2.0
	MaxBackoffDefault         = 60 * time.Second
	JitterDefault             = 0.25
	MaxRetriesDefault         = 1000
	StopBeforeDeadlineDefault = time.Duration(0)
)

// NoRetryLimit as RetryPolicy.MaxRetries means retries are bounded only by
// the deadline.
const NoRetryLimit = -1

// ExtraRetriableStatusesDefault is added to the built-in retriable statuses
// when the policy leaves ExtraRetriableStatuses nil.
var ExtraRetriableStatusesDefault = []int{499}

// RetryPolicy decides whether a failed attempt is tried again and when.
// The zero value is not usable; call WithDefaults.
type RetryPolicy struct {
	// Backoff is the delay before the first retry.
	Backoff time.Duration `yaml:"backoff" json:"backoff"`
	// BackoffFactor multiplies the delay with each retry.
	BackoffFactor float64 `yaml:"backoff_factor" json:"backoff_factor"`
	// MaxBackoff caps the delay before jitter is applied.
	MaxBackoff time.Duration `yaml:"max_backoff" json:"max_backoff"`
	// Jitter is the ± fraction applied to the capped delay (0.25 = ±25 %).
	Jitter float64 `yaml:"jitter" json:"jitter"`
	// MaxRetries bounds the retries of one request; -1 (NoRetryLimit)
	// leaves only the deadline. 0 means never retry.
	MaxRetries int `yaml:"max_retries" json:"max_retries"`
	// StopBeforeDeadline: no retry may start at or after
	// expires_at − StopBeforeDeadline.
	StopBeforeDeadline time.Duration `yaml:"stop_before_deadline" json:"stop_before_deadline"`
	// ExtraRetriableStatuses are retried on top of 5xx, 429, 408 and 404.
	// Unset means the default ([499]); an empty list adds none.
	ExtraRetriableStatuses []int `yaml:"extra_retriable_statuses" json:"extra_retriable_statuses"`

	maxRetriesSet bool
}

// DefaultRetryPolicy returns the policy with every default applied.
func DefaultRetryPolicy() RetryPolicy { return RetryPolicy{}.WithDefaults() }

// WithMaxRetries returns p with MaxRetries set explicitly (including 0, which
// WithDefaults would otherwise replace).
func (p RetryPolicy) WithMaxRetries(n int) RetryPolicy {
	p.MaxRetries = n
	p.maxRetriesSet = true
	return p
}

// WithDefaults fills unset fields with their defaults. A MaxRetries of 0 is
// taken as unset unless WithMaxRetries set it; use WithMaxRetries(0) to
// disable retries.
func (p RetryPolicy) WithDefaults() RetryPolicy {
	if p.Backoff == 0 {
		p.Backoff = BackoffDefault
	}
	if p.BackoffFactor == 0 {
		p.BackoffFactor = BackoffFactorDefault
	}
	if p.MaxBackoff == 0 {
		p.MaxBackoff = MaxBackoffDefault
	}
	if p.Jitter == 0 {
		p.Jitter = JitterDefault
	}
	if p.MaxRetries == 0 && !p.maxRetriesSet {
		p.MaxRetries = MaxRetriesDefault
	}
	p.maxRetriesSet = true
	if p.ExtraRetriableStatuses == nil {
		p.ExtraRetriableStatuses = append([]int(nil), ExtraRetriableStatusesDefault...)
	}
	return p
}

// Validate reports the first invalid field as a *ConfigError named by its
// key under "retry" (the section a RetryPolicy always has in a config file).
func (p RetryPolicy) Validate() error {
	switch {
	case p.Backoff < 0:
		return ConfigErrorf("retry.backoff", "must not be negative, got %s", p.Backoff)
	case p.BackoffFactor < 1:
		return ConfigErrorf("retry.backoff_factor", "must be at least 1, got %g", p.BackoffFactor)
	case p.MaxBackoff < p.Backoff:
		return ConfigErrorf("retry.max_backoff", "%s is below retry.backoff %s", p.MaxBackoff, p.Backoff)
	case p.Jitter < 0 || p.Jitter >= 1:
		return ConfigErrorf("retry.jitter", "must be in [0, 1), got %g", p.Jitter)
	case p.MaxRetries < NoRetryLimit:
		return ConfigErrorf("retry.max_retries", "must be %d (no limit) or at least 0, got %d", NoRetryLimit, p.MaxRetries)
	case p.StopBeforeDeadline < 0:
		return ConfigErrorf("retry.stop_before_deadline", "must not be negative, got %s", p.StopBeforeDeadline)
	}
	for i, s := range p.ExtraRetriableStatuses {
		if s < 400 || s > 599 {
			return ConfigErrorf(fmt.Sprintf("retry.extra_retriable_statuses[%d]", i), "%d is not an HTTP error status (400-599)", s)
		}
	}
	return nil
}

// IsRetriableStatus reports whether an upstream answer with this status is
// retried: 5xx, 429, 408, 404 and the extra list. Statuses below 400 are
// successes and never retried.
func (p RetryPolicy) IsRetriableStatus(status int) bool {
	switch {
	case status < 400:
		return false
	case status >= 500, status == 429, status == 408, status == 404:
		return true
	}
	for _, s := range p.ExtraRetriableStatuses {
		if s == status {
			return true
		}
	}
	return false
}

// ClassifyStatus maps an upstream status to a Failure, or nil for a success.
func (p RetryPolicy) ClassifyStatus(status int) *Failure {
	switch {
	case status < 400:
		return nil
	case p.IsRetriableStatus(status):
		return NewFailure(CodeRetriableStatus, status, "upstream answered %d", status)
	default:
		return NewFailure(CodeNonRetriableStatus, status, "upstream answered %d", status)
	}
}

// BaseDelay is the delay before retry number attempt (0-based) without
// jitter: min(Backoff · BackoffFactor^attempt, MaxBackoff).
func (p RetryPolicy) BaseDelay(attempt int) time.Duration {
	if attempt < 0 {
		attempt = 0
	}
	d := float64(p.Backoff) * math.Pow(p.BackoffFactor, float64(attempt))
	if d >= float64(p.MaxBackoff) || math.IsInf(d, 0) || math.IsNaN(d) {
		return p.MaxBackoff
	}
	return time.Duration(d)
}

// Delay is BaseDelay with ±Jitter applied. rnd returns a uniform value in
// [0, 1); pass a seeded source in tests.
func (p RetryPolicy) Delay(attempt int, rnd func() float64) time.Duration {
	return ApplyJitter(p.BaseDelay(attempt), p.Jitter, rnd)
}

// ApplyJitter scales d by a uniform factor in [1−frac, 1+frac).
func ApplyJitter(d time.Duration, frac float64, rnd func() float64) time.Duration {
	if frac <= 0 || rnd == nil {
		return d
	}
	f := 1 + frac*(2*rnd()-1)
	return time.Duration(float64(d) * f)
}

// Denial says why a retry was refused.
type Denial string

const (
	DenyNone         Denial = ""
	DenyNotRetriable Denial = "not_retriable"
	DenyMaxRetries   Denial = "max_retries"
	DenyDeadline     Denial = "deadline"
)

// RetryInput is what the policy needs to decide on one failed attempt.
type RetryInput struct {
	// Attempt is the 0-based number of the attempt that just failed.
	Attempt int
	// Failure is what went wrong.
	Failure *Failure
	// Now is the decision time.
	Now time.Time
	// ExpiresAt is the request's deadline; zero means none.
	ExpiresAt time.Time
	// RetryAfter is the upstream's Retry-After, if it sent one (> 0).
	RetryAfter time.Duration
}

// RetryDecision is the policy's answer.
type RetryDecision struct {
	Retry     bool
	Delay     time.Duration
	NotBefore time.Time
	Denied    Denial
}

// ErrNoFailure is returned by Decide when the input carries no failure.
var ErrNoFailure = errors.New("lifecycle: retry decision without a failure")

// Decide applies the policy: a retriable failure is retried after the
// backoff (or the upstream's Retry-After, which overrides it) unless the
// retry budget is spent or the retry would start at or after
// ExpiresAt − StopBeforeDeadline.
func (p RetryPolicy) Decide(in RetryInput, rnd func() float64) (RetryDecision, error) {
	if in.Failure == nil {
		return RetryDecision{}, ErrNoFailure
	}
	if !in.Failure.Retriable() {
		return RetryDecision{Denied: DenyNotRetriable}, nil
	}
	if p.MaxRetries != NoRetryLimit && in.Attempt >= p.MaxRetries {
		return RetryDecision{Denied: DenyMaxRetries}, nil
	}
	delay := p.Delay(in.Attempt, rnd)
	if in.RetryAfter > 0 {
		delay = in.RetryAfter
	}
	start := in.Now.Add(delay)
	if !p.RetryAllowedAt(start, in.ExpiresAt) {
		return RetryDecision{Delay: delay, NotBefore: start, Denied: DenyDeadline}, nil
	}
	return RetryDecision{Retry: true, Delay: delay, NotBefore: start}, nil
}

// RetryAllowedAt reports whether an attempt starting at start is allowed
// before the deadline: start < expiresAt − StopBeforeDeadline. A zero
// expiresAt means no deadline.
func (p RetryPolicy) RetryAllowedAt(start, expiresAt time.Time) bool {
	if expiresAt.IsZero() {
		return true
	}
	return start.Before(expiresAt.Add(-p.StopBeforeDeadline))
}
