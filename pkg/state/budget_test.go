package state_test

import (
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/salvo-run/salvo/pkg/ratelimit"
	"github.com/salvo-run/salvo/pkg/state"
)

// admitArgs are the arguments of an admission of cost at the bundle's clock.
func (b *bundle) admitArgs(key string, limits, cost ratelimit.Amounts, maxWait time.Duration) ratelimit.AdmitArgs {
	return ratelimit.AdmitArgs{Key: key, Now: b.clock.Now(), Limits: limits, Cost: cost, MaxWait: maxWait, TTL: time.Hour}
}

func TestBudgetUnderConcurrencyNeverAdmitsMoreThanTheBucketHolds(t *testing.T) {
	t.Parallel()
	b := setup(t)
	limits := ratelimit.Amounts{ratelimit.Requests: 500, ratelimit.Tokens: 10_000}
	const workers, calls, maxCost = 16, 40, 97
	var (
		mu       sync.Mutex
		admitted ratelimit.Amounts
		refused  int
	)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range calls {
				cost := ratelimit.Cost{Input: int64(1 + (w*31+i*17)%maxCost)}.Amounts()
				// The clock stands still and no wait is allowed: only what
				// the bucket holds may be admitted.
				a, err := b.store.AdmitBudget(ctxT(t), b.admitArgs("k1|m", limits, cost, 0))
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				if a.OK {
					for d := range admitted {
						admitted[d] += cost[d]
					}
				} else {
					refused++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	require.LessOrEqual(t, admitted[ratelimit.Tokens], limits[ratelimit.Tokens], "admitted tokens beyond the bucket")
	require.LessOrEqual(t, admitted[ratelimit.Requests], limits[ratelimit.Requests])
	require.Positive(t, refused, "the load was sized to exhaust the bucket")
	require.Greater(t, admitted[ratelimit.Tokens], limits[ratelimit.Tokens]-maxCost,
		"a refused call was refused while the bucket held its cost")
}

func TestBudgetReservationsAreDueOneAfterAnotherAtTheLimitsRate(t *testing.T) {
	t.Parallel()
	b := setup(t)
	limits := ratelimit.Amounts{ratelimit.Requests: 60} // one a second
	one := ratelimit.Cost{}.Amounts()
	var waits []time.Duration
	for range 63 {
		a, err := b.store.AdmitBudget(ctxT(t), b.admitArgs("k|m", limits, one, time.Minute))
		require.NoError(t, err)
		require.True(t, a.OK)
		waits = append(waits, a.Wait)
	}
	// A minute's worth goes at once; every later call is due a second
	// after the one before it.
	require.Equal(t, time.Duration(0), waits[59])
	require.Equal(t, []time.Duration{time.Second, 2 * time.Second, 3 * time.Second}, waits[60:])

	a, err := b.store.AdmitBudget(ctxT(t), b.admitArgs("k|m", limits, one, 2*time.Second))
	require.NoError(t, err)
	require.False(t, a.OK, "a call due later than its longest wait reserves nothing")
	require.Equal(t, 4*time.Second, a.Wait)

	b.clock.Advance(4 * time.Second)
	a, err = b.store.AdmitBudget(ctxT(t), b.admitArgs("k|m", limits, one, 0))
	require.NoError(t, err)
	require.True(t, a.OK, "the refused call reserved nothing, so the refill covers the next")
}

func TestBudgetHoldStopsEveryAdmissionUntilItEnds(t *testing.T) {
	t.Parallel()
	b := setup(t)
	// A second worker's store on the same Redis and prefix.
	st, err := state.New(b.redis.Client, b.cfg)
	require.NoError(t, err)
	other := &bundle{redis: b.redis, clock: b.clock, store: st, cfg: b.cfg}
	limits := ratelimit.Amounts{ratelimit.Requests: 600}
	one := ratelimit.Cost{}.Amounts()
	require.NoError(t, b.store.SettleBudget(ctxT(t), ratelimit.SettleArgs{
		Key: "k|m", Now: b.clock.Now(), Limits: limits, Learned: ratelimit.Unknown, Remaining: ratelimit.Unknown,
		HoldUntil: b.clock.Now().Add(2 * time.Second), TTL: time.Hour,
	}))
	a, err := other.store.AdmitBudget(ctxT(t), other.admitArgs("k|m", limits, one, time.Minute))
	require.NoError(t, err)
	require.False(t, a.OK)
	require.Equal(t, 2*time.Second, a.Wait)

	a, err = other.store.AdmitBudget(ctxT(t), other.admitArgs("k|other-model", limits, one, 0))
	require.NoError(t, err)
	require.True(t, a.OK, "the hold is the key × model's only")

	b.clock.Advance(2 * time.Second)
	a, err = other.store.AdmitBudget(ctxT(t), other.admitArgs("k|m", limits, one, 0))
	require.NoError(t, err)
	require.True(t, a.OK)
}

func TestBudgetLearnsLimitsAndRemainingFromHeadersAndTakesRefunds(t *testing.T) {
	t.Parallel()
	b := setup(t)
	none := ratelimit.Amounts{}
	cost := ratelimit.Cost{Input: 100, Output: 100}.Amounts()

	a, err := b.store.AdmitBudget(ctxT(t), b.admitArgs("k|m", none, cost, 0))
	require.NoError(t, err)
	require.True(t, a.OK, "no limit configured or learned: admitted")
	require.Equal(t, ratelimit.Amounts{}, a.Limits)

	learned, remaining := ratelimit.Unknown, ratelimit.Unknown
	learned[ratelimit.Tokens], remaining[ratelimit.Tokens] = 6000, 250
	require.NoError(t, b.store.SettleBudget(ctxT(t), ratelimit.SettleArgs{Key: "k|m", Now: b.clock.Now(), Limits: none,
		Learned: learned, Remaining: remaining, TTL: time.Hour}))

	a, err = b.store.AdmitBudget(ctxT(t), b.admitArgs("k|m", none, cost, 0))
	require.NoError(t, err)
	require.True(t, a.OK, "250 remaining cover 200")
	require.Equal(t, int64(6000), a.Limits[ratelimit.Tokens])
	a, err = b.store.AdmitBudget(ctxT(t), b.admitArgs("k|m", none, cost, 0))
	require.NoError(t, err)
	require.False(t, a.OK, "50 left do not cover 200")
	require.Equal(t, 1500*time.Millisecond, a.Wait, "150 tokens at 100 a second")

	// The first call used 20 of the 200 it reserved: 180 come back.
	refund := ratelimit.Amounts{ratelimit.Tokens: 180}
	require.NoError(t, b.store.SettleBudget(ctxT(t), ratelimit.SettleArgs{Key: "k|m", Now: b.clock.Now(), Limits: none,
		Refund: refund, Learned: ratelimit.Unknown, Remaining: ratelimit.Unknown, TTL: time.Hour}))
	a, err = b.store.AdmitBudget(ctxT(t), b.admitArgs("k|m", none, cost, 0))
	require.NoError(t, err)
	require.True(t, a.OK, "50 + 180 cover 200")

	configured := ratelimit.Amounts{ratelimit.Tokens: 3000}
	a, err = b.store.AdmitBudget(ctxT(t), b.admitArgs("k|m", configured, ratelimit.Amounts{}, 0))
	require.NoError(t, err)
	require.Equal(t, int64(3000), a.Limits[ratelimit.Tokens], "the lower of configured and learned applies")
}
