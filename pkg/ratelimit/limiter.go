package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
)

// ErrDeadline: the call cannot get budget before its cutoff.
var ErrDeadline = errors.New("ratelimit: no budget before the deadline")

// Key names a budget: what shares it (Budget: the route's budget name or a
// hash of its API key, never the key) and the model.
type Key struct {
	Budget string
	Model  string
}

// String is the key's id in the Backend: "<budget>|<model>".
func (k Key) String() string { return k.Budget + "|" + k.Model }

// AdmitArgs ask the Backend to reserve a call's cost (Bucket.Admit).
type AdmitArgs struct {
	Key string
	Now time.Time
	// Limits are the configured limits (0: none; a learned one may apply).
	Limits Amounts
	Cost   Amounts
	// MaxWait: reserve nothing when the call would wait longer.
	MaxWait time.Duration
	TTL     time.Duration
}

// Admission is the Backend's answer.
type Admission struct {
	// OK: the cost is reserved; the call goes after Wait.
	OK bool
	// Wait is how long until the reservation is due, or (not OK) until
	// the call could be admitted.
	Wait time.Duration
	// Limits are the budget's effective limits (configured or learned).
	Limits Amounts
}

// SettleArgs report a call's end to the Backend: a refund of what was
// reserved beyond the actual use, and what the response's headers said.
type SettleArgs struct {
	Key       string
	Now       time.Time
	Limits    Amounts // configured, as in AdmitArgs
	Refund    Amounts
	Learned   Amounts // limits read from the headers, -1 unknown
	Remaining Amounts // remaining counts read from the headers, -1 unknown
	HoldUntil time.Time
	TTL       time.Duration
}

// Backend keeps the fleet's budgets (satisfied by *state.Store).
type Backend interface {
	AdmitBudget(ctx context.Context, a AdmitArgs) (Admission, error)
	SettleBudget(ctx context.Context, s SettleArgs) error
}

// Limiter admits calls against their budgets and adaptive concurrency
// limits. It is safe for concurrent use.
type Limiter struct {
	cfg     Config
	backend Backend
	clock   func() time.Time
	log     zerolog.Logger

	perPodMu sync.RWMutex
	perPod   func(model string) int

	mu   sync.RWMutex
	keys map[Key]*keyState

	// onHold is told of each hold this limiter stored (OnHold).
	onHold atomic.Pointer[func(Key)]
}

// settleTimeout bounds Done's report to the Backend.
const settleTimeout = 10 * time.Second

// OnHold sets fn to be called after Done stored a hold the upstream asked
// for (a worker announces it to the fleet, so that workers that never saw
// a limit of key ask the Backend too: Held). fn runs on Done's goroutine.
func (l *Limiter) OnHold(fn func(Key)) { l.onHold.Store(&fn) }

// keyState is what this worker knows of one key × model.
type keyState struct {
	key Key
	id  string
	// budgeted: a limit was configured or learned, or a hold was seen;
	// admissions then go to the Backend.
	budgeted atomic.Bool
	adaptive *aimd // nil when adaptive concurrency is off

	mu      sync.Mutex
	known   Amounts // last effective limits (Backend or headers)
	local   *Bucket // the fallback while the Backend is unreachable
	down    bool
	lastLog time.Time
}

// New builds a Limiter. cfg gets WithDefaults and must validate; perPod is
// the per-pod concurrency limit of a model (the adaptive limit's ceiling).
func New(cfg Config, backend Backend, clock func() time.Time, perPod func(string) int, log zerolog.Logger) (*Limiter, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if backend == nil || perPod == nil {
		return nil, errors.New("ratelimit: backend and perPod are required")
	}
	if clock == nil {
		clock = time.Now
	}
	return &Limiter{cfg: cfg, backend: backend, clock: clock, perPod: perPod,
		log: log.With().Str("component", "ratelimit").Logger(), keys: map[Key]*keyState{}}, nil
}

// Config is the limiter's effective config.
func (l *Limiter) Config() Config { return l.cfg }

// SetPerPod changes the adaptive limits' ceiling (a reload of the
// per-pod concurrency limits).
func (l *Limiter) SetPerPod(perPod func(string) int) {
	l.perPodMu.Lock()
	l.perPod = perPod
	l.perPodMu.Unlock()
	l.mu.RLock()
	defer l.mu.RUnlock()
	for k, ks := range l.keys {
		if ks.adaptive != nil {
			ks.adaptive.setMax(perPod(k.Model))
		}
	}
}

func (l *Limiter) lookup(k Key) *keyState {
	l.mu.RLock()
	ks := l.keys[k]
	l.mu.RUnlock()
	return ks
}

func (l *Limiter) state(k Key) *keyState {
	if ks := l.lookup(k); ks != nil {
		return ks
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if ks := l.keys[k]; ks != nil {
		return ks
	}
	ks := &keyState{key: k, id: k.String(), known: Unknown}
	if l.cfg.Adaptive.Enabled {
		l.perPodMu.RLock()
		ks.adaptive = newAIMD(l.cfg.Adaptive, l.perPod(k.Model))
		l.perPodMu.RUnlock()
	}
	l.keys[k] = ks
	return ks
}

// Ticket is an admitted call; Done ends it. The zero Ticket's Done does
// nothing.
type Ticket struct {
	l        *Limiter
	key      Key
	ks       *keyState
	reserved Amounts
	budgeted bool
	slot     bool
}

// Key is the budget the ticket was admitted against.
func (t Ticket) Key() Key { return t.key }

// Held notes that another worker stored a hold of key (a control event):
// from now on this worker asks the Backend before each call of key, and
// the Backend's hold decides how long it waits. The event only makes the
// worker ask; it cannot make it wait by itself.
func (l *Limiter) Held(key Key) {
	if l.cfg.Disabled || key.Budget == "" || key.Model == "" {
		return
	}
	l.state(key).budgeted.Store(true)
}

// Acquire waits until the call of key with body may go: its estimated cost
// reserved from the key's budgets (when any is configured or was learned)
// and a place under its adaptive limit (when enabled). It fails with
// ErrDeadline, at once, when the budget cannot be had before cutoff (zero:
// no cutoff), and with ctx's cause when ctx ends. A key without budgets or
// adaptive limit costs a map lookup.
func (l *Limiter) Acquire(ctx context.Context, key Key, body []byte, cutoff time.Time) (Ticket, error) {
	if l.cfg.Disabled {
		return Ticket{}, nil
	}
	ks := l.lookup(key)
	configured := l.cfg.Budgets[key.Model].Amounts()
	budgeted := configured.Any() || (ks != nil && ks.budgeted.Load())
	if !budgeted && !l.cfg.Adaptive.Enabled {
		return Ticket{l: l, key: key}, nil
	}
	if ks == nil {
		ks = l.state(key)
	}
	t := Ticket{l: l, key: key, ks: ks}
	if budgeted {
		cost := Estimate(body, l.cfg.DefaultOutputTokens).Amounts()
		if err := l.reserve(ctx, ks, configured, cost, cutoff); err != nil {
			return Ticket{}, err
		}
		t.reserved, t.budgeted = cost, true
	}
	if ks.adaptive != nil {
		if err := ks.adaptive.acquire(ctx); err != nil {
			t.Done(context.WithoutCancel(ctx), Outcome{})
			return Ticket{}, err
		}
		t.slot = true
	}
	return t, nil
}

// reserve takes cost from the budgets, waiting for the reservation to be
// due; after a wait it checks once more that no hold began meanwhile.
func (l *Limiter) reserve(ctx context.Context, ks *keyState, limits, cost Amounts, cutoff time.Time) error {
	reserved := false
	for {
		now := l.clock()
		maxWait := l.cfg.MaxWait
		if !cutoff.IsZero() {
			left := cutoff.Sub(now)
			if left < 0 {
				return l.giveUp(ctx, ks, limits, cost, reserved, fmt.Errorf("%w: the cutoff passed", ErrDeadline))
			}
			maxWait = min(maxWait, left)
		}
		c := cost
		if reserved {
			c = Amounts{} // only the hold is checked
		}
		ok, wait, err := l.admit(ctx, ks, limits, c, now, maxWait)
		if err != nil {
			return l.giveUp(ctx, ks, limits, cost, reserved, err)
		}
		if !ok && !cutoff.IsZero() && wait > cutoff.Sub(now) {
			return l.giveUp(ctx, ks, limits, cost, reserved, fmt.Errorf("%w: budget in %s, %s left", ErrDeadline, wait, cutoff.Sub(now).Round(time.Millisecond)))
		}
		if !sleep(ctx, min(wait, maxWait)) {
			return l.giveUp(ctx, ks, limits, cost, reserved || ok, context.Cause(ctx))
		}
		if ok && (reserved || wait == 0) {
			return nil
		}
		reserved = reserved || ok
	}
}

// giveUp refunds a reservation that will not be used and returns err.
func (l *Limiter) giveUp(ctx context.Context, ks *keyState, limits, cost Amounts, reserved bool, err error) error {
	if reserved {
		l.settle(context.WithoutCancel(ctx), ks, SettleArgs{Limits: limits, Refund: cost, Learned: Unknown, Remaining: Unknown})
	}
	return err
}

// admit asks the Backend, or the local share when it cannot be reached.
func (l *Limiter) admit(ctx context.Context, ks *keyState, limits, cost Amounts, now time.Time, maxWait time.Duration) (bool, time.Duration, error) {
	a, err := l.backend.AdmitBudget(ctx, AdmitArgs{Key: ks.id, Now: now, Limits: limits, Cost: cost, MaxWait: maxWait, TTL: l.cfg.TTL})
	if err == nil {
		ks.mu.Lock()
		ks.known = a.Limits
		if ks.down {
			ks.down = false
			l.log.Info().Str("budget", ks.key.Budget).Str("model", ks.key.Model).Msg("budget store reachable again; shared budgets back")
		}
		ks.mu.Unlock()
		return a.OK, a.Wait, nil
	}
	if ctx.Err() != nil {
		return false, 0, context.Cause(ctx)
	}
	ok, wait := ks.fallback(l, limits, func(b *Bucket) (bool, time.Duration) { return b.Admit(now, cost, maxWait) }, err)
	return ok, wait, nil
}

// fallback runs fn on the local bucket: FallbackShare of the lower of the
// configured and the last known limits, at least one of each. Holds
// seen by this worker apply to it too.
func (ks *keyState) fallback(l *Limiter, limits Amounts, fn func(*Bucket) (bool, time.Duration), cause error) (bool, time.Duration) {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	share := ks.shareLocked(limits, l.cfg.FallbackShare)
	if ks.local == nil {
		ks.local = &Bucket{}
	}
	ks.local.Limits = share
	if !ks.down {
		ks.down = true
		l.log.Warn().Err(cause).Str("budget", ks.key.Budget).Str("model", ks.key.Model).
			Interface("local_limits", share).Msg("budget store unreachable; spending a local share of the budget")
	}
	return fn(ks.local)
}

func (ks *keyState) shareLocked(limits Amounts, share float64) Amounts {
	var out Amounts
	for d := range out {
		lim := limits[d]
		if k := ks.known[d]; k > 0 && (lim <= 0 || k < lim) {
			lim = k
		}
		if lim > 0 {
			out[d] = max(1, int64(float64(lim)*share))
		}
	}
	return out
}

// Outcome is how an admitted call went.
type Outcome struct {
	// Called: the call went out (false gives the whole reservation back).
	Called  bool
	Status  int
	Latency time.Duration
	// Observation is what the response's headers said.
	Observation Observation
	// Body is the response body, read for its usage.
	Body []byte
}

// Done ends the call: its place under the adaptive limit is freed, its
// reservation corrected by the response's usage, and what the headers
// said goes to the Backend, within settleTimeout of ctx. For a key the
// limiter never saw limits of, and a response without any, it does
// nothing (no Backend call, no allocation).
func (t Ticket) Done(ctx context.Context, o Outcome) {
	l := t.l
	if l == nil {
		return
	}
	obs := o.Observation
	if l.cfg.IgnoreHeaders {
		obs = Observation{HoldFor: obs.HoldFor, Seen: obs.HoldFor > 0}
		for d := range obs.Windows {
			obs.Windows[d] = Window{Limit: -1, Remaining: -1}
		}
	}
	if !t.budgeted && !t.slot && !obs.Seen {
		return
	}
	ks := t.ks
	if ks == nil {
		ks = l.state(t.key)
	}
	if t.slot {
		if limit, changed := ks.adaptive.release(o.Called, o.Latency, o.Status); changed {
			l.logAdaptive(ks, limit, o.Status)
		}
	}
	var refund Amounts
	if t.budgeted {
		switch u, ok := ParseUsage(o.Body); {
		case !o.Called:
			refund = t.reserved
		case ok:
			actual := u.Amounts()
			for d := Tokens; d < NumDims; d++ {
				refund[d] = t.reserved[d] - actual[d]
			}
		case o.Status >= http.StatusBadRequest:
			// Refused calls (a 429, a 400) spent no tokens.
			refund = t.reserved
			refund[Requests] = 0
		}
	}
	if obs.Seen {
		ks.budgeted.Store(true)
	}
	if refund == (Amounts{}) && !obs.Seen {
		return
	}
	s := SettleArgs{Limits: l.cfg.Budgets[t.key.Model].Amounts(), Refund: refund, Learned: obs.Limits(), Remaining: obs.Remaining()}
	if obs.HoldFor > 0 {
		s.HoldUntil = l.clock().Add(obs.HoldFor)
		l.log.Info().Str("budget", ks.key.Budget).Str("model", ks.key.Model).Dur("hold", obs.HoldFor).Int("status", o.Status).
			Msg("upstream asked to hold; the fleet holds this key and model")
	}
	if learned := obs.Limits(); learned.Any() {
		ks.mu.Lock()
		for d, v := range learned {
			if v > 0 {
				ks.known[d] = v
			}
		}
		ks.mu.Unlock()
	}
	ctx, cancel := context.WithTimeout(ctx, settleTimeout)
	defer cancel()
	l.settle(ctx, ks, s)
	if fn := l.onHold.Load(); fn != nil && obs.HoldFor > 0 {
		(*fn)(t.key)
	}
}

// settle reports to the Backend, or applies it to the local bucket.
func (l *Limiter) settle(ctx context.Context, ks *keyState, s SettleArgs) {
	s.Key, s.TTL = ks.id, l.cfg.TTL
	if s.Now.IsZero() {
		s.Now = l.clock()
	}
	err := l.backend.SettleBudget(ctx, s)
	ks.mu.Lock()
	local := ks.local
	ks.mu.Unlock()
	if err == nil && local == nil {
		return
	}
	if err != nil {
		ks.fallback(l, s.Limits, func(b *Bucket) (bool, time.Duration) {
			b.Refund(s.Now, s.Refund)
			b.Hold(s.HoldUntil)
			return true, 0
		}, err)
		return
	}
	// Keep the local bucket's holds in step for the next outage.
	ks.mu.Lock()
	local.Hold(s.HoldUntil)
	ks.mu.Unlock()
}

// logAdaptive logs a limit change: decreases at info at most once a second
// per key, increases at debug.
func (l *Limiter) logAdaptive(ks *keyState, limit, status int) {
	ks.mu.Lock()
	now := l.clock()
	quiet := now.Sub(ks.lastLog) < time.Second
	if !quiet {
		ks.lastLog = now
	}
	ks.mu.Unlock()
	lvl := zerolog.DebugLevel
	if !quiet {
		lvl = zerolog.InfoLevel
	}
	l.log.WithLevel(lvl).Str("budget", ks.key.Budget).Str("model", ks.key.Model).Int("limit", limit).
		Int("status", status).Msg("adaptive concurrency limit changed")
}

// KeyStatus is what a worker knows of one key × model right now.
type KeyStatus struct {
	Budget   string `json:"budget"`
	Model    string `json:"model"`
	Budgeted bool   `json:"budgeted"`
	// Limits are the effective per-minute limits last seen
	// (requests, tokens, input tokens, output tokens; -1 unknown).
	Limits [NumDims]int64 `json:"limits_per_minute"`
	// Fallback: the budget store is unreachable; a local share applies.
	Fallback bool `json:"fallback,omitempty"`
	// Adaptive* are the adaptive concurrency limit and its use.
	AdaptiveLimit    int `json:"adaptive_limit,omitempty"`
	AdaptiveInflight int `json:"adaptive_inflight,omitempty"`
	AdaptiveWaiting  int `json:"adaptive_waiting,omitempty"`
}

// Status lists every key × model this worker has seen, sorted.
func (l *Limiter) Status() []KeyStatus {
	l.mu.RLock()
	out := make([]KeyStatus, 0, len(l.keys))
	for _, ks := range l.keys {
		s := KeyStatus{Budget: ks.key.Budget, Model: ks.key.Model, Budgeted: ks.budgeted.Load()}
		ks.mu.Lock()
		s.Limits, s.Fallback = ks.known, ks.down
		ks.mu.Unlock()
		if ks.adaptive != nil {
			s.AdaptiveLimit, s.AdaptiveInflight, s.AdaptiveWaiting = ks.adaptive.status()
		}
		out = append(out, s)
	}
	l.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool {
		if out[i].Budget != out[j].Budget {
			return out[i].Budget < out[j].Budget
		}
		return out[i].Model < out[j].Model
	})
	return out
}

// sleep waits d or until ctx ends; false when ctx ended.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
