package ratelimit

import (
	"math"
	"time"
)

// Bucket is the budget arithmetic of one key × model: a token bucket per
// Dim holding up to a minute's limit, refilled continuously, from which an
// admission takes its whole cost at once — possibly going below zero, which
// is a reservation: the call may go when the refill has paid the debt back
// (Admit's wait). The Redis script (pkg/state/lua/budget_admit.lua) keeps
// the same state in a hash for the fleet; a worker that cannot reach Redis
// runs a Bucket of its own on a share of the limits.
type Bucket struct {
	Limits Amounts // per minute; <= 0 is no limit in that Dim
	levels [NumDims]float64
	ts     time.Time
	hold   time.Time
	init   bool
}

// perMS is a limit's refill per millisecond.
func perMS(limit int64) float64 { return float64(limit) / float64(time.Minute/time.Millisecond) }

func (b *Bucket) refill(now time.Time) {
	if !b.init {
		for d, l := range b.Limits {
			b.levels[d] = float64(max(l, 0))
		}
		b.ts, b.init = now, true
	}
	ms := float64(max(now.Sub(b.ts), 0)) / float64(time.Millisecond)
	for d, l := range b.Limits {
		if l > 0 {
			b.levels[d] = math.Min(float64(l), b.levels[d]+ms*perMS(l))
		}
	}
	if now.After(b.ts) {
		b.ts = now
	}
}

// Admit reserves cost at now unless the call would have to wait longer
// than maxWait. It returns whether the cost was reserved and how long the
// call waits (until the hold ends, or the refill covers the cost). A cost
// above a limit is charged as the limit, so no call waits forever.
func (b *Bucket) Admit(now time.Time, cost Amounts, maxWait time.Duration) (bool, time.Duration) {
	b.refill(now)
	var wait time.Duration
	for d, l := range b.Limits {
		if l <= 0 {
			continue
		}
		c := float64(min(cost[d], l))
		if b.levels[d] < c {
			wait = max(wait, time.Duration(math.Ceil((c-b.levels[d])/perMS(l)))*time.Millisecond)
		}
	}
	if b.hold.After(now) {
		return false, b.hold.Sub(now)
	}
	if wait > maxWait {
		return false, wait
	}
	for d, l := range b.Limits {
		if l > 0 {
			b.levels[d] -= float64(min(cost[d], l))
		}
	}
	return true, wait
}

// Refund gives back (or, negative, charges more of) a reserved cost.
func (b *Bucket) Refund(now time.Time, r Amounts) {
	b.refill(now)
	for d, l := range b.Limits {
		if l > 0 {
			b.levels[d] = math.Min(float64(l), b.levels[d]+float64(r[d]))
		}
	}
}

// Levels are what each budget holds at now (negative: reserved ahead).
func (b *Bucket) Levels(now time.Time) [NumDims]float64 {
	b.refill(now)
	return b.levels
}

// Hold stops admissions until.
func (b *Bucket) Hold(until time.Time) {
	if until.After(b.hold) {
		b.hold = until
	}
}
