package state_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/salvo-run/salvo/pkg/lifecycle"
	"github.com/salvo-run/salvo/pkg/state"
)

// The tests in this file hold the store to lifecycle.Transitions: every
// legal edge is made by some store call, and calls that would make an
// illegal move are refused.

// subject is one request of a batch of two, brought to a known state by
// store calls alone. The batch's other request stays pending.
type subject struct {
	t       *testing.T
	b       *bundle
	req     *lifecycle.Request
	members []*lifecycle.Request // the batch's requests, for recount
	held    lifecycle.Held       // the latest lease taken on req; zero if none
	claims  int
}

// bring creates a batch on a store of its own and moves its first request
// to from: pending (no record yet), claimed, processing, or one of the
// terminals reached from processing.
func bring(t *testing.T, b *bundle, from lifecycle.State) *subject {
	t.Helper()
	b.createBatch(t, "bt", 2)
	s := &subject{t: t, b: b, req: request("r1", "bt"), members: []*lifecycle.Request{request("r1", "bt"), request("r2", "bt")}}
	switch from {
	case lifecycle.StatePending:
	case lifecycle.StateClaimed:
		s.take(false)
	case lifecycle.StateProcessing:
		s.take(true)
	case lifecycle.StateCompleted:
		s.take(true)
		s.must(s.complete())
	case lifecycle.StateFailed:
		s.take(true)
		s.must(s.fail())
	case lifecycle.StateCanceled:
		s.take(true)
		s.must(s.cancelRequest())
	case lifecycle.StateSuperseded:
		s.take(true)
		s.must(s.supersede())
	case lifecycle.StateExpired:
		s.take(true)
		s.must(s.expire())
	default:
		t.Fatalf("bring: no way to reach %s", from)
	}
	require.Equal(t, from, s.state())
	return s
}

// take claims req as a new owner and keeps the lease as s.held.
func (s *subject) take(start bool) {
	t := s.t
	t.Helper()
	r := s.claim(start)
	require.NoError(t, r.err)
	require.NotNil(t, r.claim.Held, "claim ended: %+v", r.claim.Ended)
	s.held = *r.claim.Held
}

// reclaimAfterExpiry lets the lease expire and takes req as a new owner.
func (s *subject) reclaimAfterExpiry(start bool) {
	s.t.Helper()
	s.b.clock.Advance(s.b.cfg.LeaseTTL + time.Second)
	s.take(start)
}

func (s *subject) must(r moveResult) {
	t := s.t
	t.Helper()
	require.NoError(t, r.err)
	_, moved := r.moved()
	require.True(t, moved, "%+v", r)
}

// state reads req's state; a request without a record is pending.
func (s *subject) state() lifecycle.State {
	t := s.t
	t.Helper()
	rec, err := s.b.store.Request(ctxT(s.t), s.req.Ref())
	if err != nil {
		require.ErrorIs(t, err, state.ErrNotFound)
		return lifecycle.StatePending
	}
	return rec.State
}

// processing is the holder's lease as a Processing, whatever state it was
// taken in: the store, not the compiler, has to refuse what follows.
func (s *subject) processing() lifecycle.Processing {
	return lifecycle.Processing{Ref: s.held.Ref, Lease: s.held.Lease, Attempt: s.held.Attempt}
}

// requireEndWritten checks what every terminal move writes (lib.lua's
// record_end): no lease, finished now, and a retention TTL on the record.
func (s *subject) requireEndWritten() {
	t := s.t
	t.Helper()
	ctx := ctxT(t)
	rec, err := s.b.store.Request(ctx, s.req.Ref())
	require.NoError(t, err)
	require.True(t, rec.LeaseExpires.IsZero(), "no lease after the end")
	require.Equal(t, s.b.clock.Now(), rec.FinishedAt)
	require.Equal(t, s.b.clock.Now(), rec.UpdatedAt)
	ttl, err := s.b.redis.Client.PTTL(ctx, s.b.cfg.Prefix+":{bt}:req:"+s.req.ID).Result()
	require.NoError(t, err)
	require.Positive(t, ttl, "a terminal record expires after retention")
}

// moveResult is what one store call answered.
type moveResult struct {
	isClaim bool
	claim   state.Claim
	tr      state.Transition
	err     error
}

// moved reports the state the call moved the request to, if it moved it.
func (r moveResult) moved() (lifecycle.State, bool) {
	switch {
	case r.err != nil:
		return "", false
	case r.isClaim && r.claim.Held != nil:
		return r.claim.Held.State, true
	case r.isClaim:
		return r.claim.Ended.State, r.claim.Ended.JustEnded
	}
	return r.tr.State, r.tr.Applied
}

func transition(tr state.Transition, err error) moveResult { return moveResult{tr: tr, err: err} }

func (s *subject) claim(start bool) moveResult {
	s.claims++
	c, err := s.b.store.Claim(ctxT(s.t), state.ClaimArgs{
		Request: s.req, Owner: fmt.Sprintf("w%d", s.claims), Delivery: uint64(s.claims), Start: start,
	})
	return moveResult{isClaim: true, claim: c, err: err}
}

func (s *subject) complete() moveResult {
	return transition(s.b.store.Complete(ctxT(s.t), s.processing(), state.Outcome{Status: 200, Result: []byte("ok")}))
}

func (s *subject) fail() moveResult {
	return transition(s.b.store.Fail(ctxT(s.t), s.held, state.Outcome{Failure: failure(lifecycle.CodeNonRetriableStatus, 400)}))
}

func (s *subject) cancel() moveResult {
	return transition(s.b.store.Cancel(ctxT(s.t), s.held, state.Outcome{}))
}

func (s *subject) expire() moveResult {
	return transition(s.b.store.Expire(ctxT(s.t), s.held, state.Outcome{}))
}

func (s *subject) retry() moveResult {
	return transition(s.b.store.Retry(ctxT(s.t), s.processing(), failure(lifecycle.CodeRetriableStatus, 503), time.Time{}))
}

func (s *subject) release() moveResult {
	return transition(s.b.store.Release(ctxT(s.t), s.held, true))
}

func (s *subject) forceFail() moveResult {
	return transition(s.b.store.ForceFail(ctxT(s.t), s.req, state.Outcome{Failure: failure(lifecycle.CodeMaxDeliveries, 0), Result: []byte("poison")}))
}

func (s *subject) cancelRequest() moveResult {
	return transition(s.b.store.CancelRequest(ctxT(s.t), s.req.Ref()))
}

func (s *subject) supersede() moveResult {
	return transition(s.b.store.Supersede(ctxT(s.t), s.req.Ref(), "copy-"+s.req.ID))
}

func (s *subject) cancelBatch() {
	t := s.t
	t.Helper()
	_, err := s.b.store.CancelBatch(ctxT(s.t), "bt")
	require.NoError(t, err)
}

// pastDeadline moves the clock past the request's and the batch's
// expires_at (and so past any lease).
func (s *subject) pastDeadline() { s.b.clock.Advance(25 * time.Hour) }

// notAMember makes req a request the batch does not have: both of its
// requests are claimed, so its pending counter is 0.
func (s *subject) notAMember() {
	s.t.Helper()
	for _, m := range s.members {
		s.req = m
		s.take(true)
	}
	s.req = request("r3", "bt")
	s.held = lifecycle.Held{}
}

// TestEveryLegalEdgeHasAStorePath drives each edge of lifecycle.Transitions
// through the store's scripts, by every store call that makes it, and
// checks the answer, the record and the batch counters (against a recount
// of the records). An edge of the table without a case here fails the
// test, as does a case whose edge the table does not have.
//
// A claim with ClaimArgs.Start makes two edges in one script (claim or
// reclaim, then start): its case names the state in between (through).
// The store has no separate start move, so claimed → processing is made
// only that way.
func TestEveryLegalEdgeHasAStorePath(t *testing.T) {
	t.Parallel()
	root := setup(t)
	type legalCase struct {
		from, to lifecycle.State
		through  lifecycle.State // for a claim with Start: the state between the two edges
		via      string
		prep     func(s *subject)
		act      func(s *subject) moveResult
	}
	const (
		pending    = lifecycle.StatePending
		claimed    = lifecycle.StateClaimed
		processing = lifecycle.StateProcessing
		completed  = lifecycle.StateCompleted
		failed     = lifecycle.StateFailed
		canceled   = lifecycle.StateCanceled
		superseded = lifecycle.StateSuperseded
		expired    = lifecycle.StateExpired
	)
	claimNoStart := func(s *subject) moveResult { return s.claim(false) }
	claimStart := func(s *subject) moveResult { return s.claim(true) }
	leaseExpired := func(s *subject) { s.b.clock.Advance(s.b.cfg.LeaseTTL + time.Second) }
	cancelled := func(s *subject) { s.cancelBatch() }
	cancelledAndLeaseExpired := func(s *subject) { s.cancelBatch(); leaseExpired(s) }
	reclaimedToTheLimit := func(start bool) func(s *subject) {
		return func(s *subject) {
			for range s.b.cfg.MaxReclaims {
				s.reclaimAfterExpiry(start)
			}
			leaseExpired(s)
		}
	}

	cases := []legalCase{
		{from: pending, to: claimed, via: "Claim", act: claimNoStart},
		{from: pending, to: processing, through: claimed, via: "Claim with Start", act: claimStart},
		{from: pending, to: failed, via: "ForceFail", act: (*subject).forceFail},
		{from: pending, to: failed, via: "Claim of a request its batch does not have", prep: (*subject).notAMember, act: claimStart},
		{from: pending, to: canceled, via: "CancelRequest", act: (*subject).cancelRequest},
		{from: pending, to: canceled, via: "Claim in a cancelled batch", prep: cancelled, act: claimStart},
		{from: pending, to: superseded, via: "Supersede", act: (*subject).supersede},
		{from: pending, to: expired, via: "Claim past expires_at", prep: (*subject).pastDeadline, act: claimStart},

		{from: claimed, to: claimed, via: "Claim after the lease expired", prep: leaseExpired, act: claimNoStart},
		{from: claimed, to: processing, through: claimed, via: "Claim with Start after the lease expired", prep: leaseExpired, act: claimStart},
		{from: claimed, to: pending, via: "Release", act: (*subject).release},
		{from: claimed, to: failed, via: "Fail", act: (*subject).fail},
		{from: claimed, to: failed, via: "ForceFail", act: (*subject).forceFail},
		{from: claimed, to: failed, via: "Claim after MaxReclaims reclaims", prep: reclaimedToTheLimit(false), act: claimNoStart},
		{from: claimed, to: canceled, via: "Cancel", act: (*subject).cancel},
		{from: claimed, to: canceled, via: "CancelRequest", act: (*subject).cancelRequest},
		{from: claimed, to: canceled, via: "Release in a cancelled batch", prep: cancelled, act: (*subject).release},
		{from: claimed, to: canceled, via: "Claim after the lease expired in a cancelled batch", prep: cancelledAndLeaseExpired, act: claimStart},
		{from: claimed, to: superseded, via: "Supersede", act: (*subject).supersede},
		{from: claimed, to: expired, via: "Expire", act: (*subject).expire},
		{from: claimed, to: expired, via: "Claim past expires_at", prep: (*subject).pastDeadline, act: claimStart},

		{from: processing, to: claimed, via: "Claim after the lease expired", prep: leaseExpired, act: claimNoStart},
		{from: processing, to: processing, through: claimed, via: "Claim with Start after the lease expired", prep: leaseExpired, act: claimStart},
		{from: processing, to: pending, via: "Retry", act: (*subject).retry},
		{from: processing, to: pending, via: "Release", act: (*subject).release},
		{from: processing, to: completed, via: "Complete", act: (*subject).complete},
		{from: processing, to: failed, via: "Fail", act: (*subject).fail},
		{from: processing, to: failed, via: "ForceFail", act: (*subject).forceFail},
		{from: processing, to: failed, via: "Claim after MaxReclaims reclaims", prep: reclaimedToTheLimit(true), act: claimStart},
		{from: processing, to: canceled, via: "Cancel", act: (*subject).cancel},
		{from: processing, to: canceled, via: "CancelRequest", act: (*subject).cancelRequest},
		{from: processing, to: canceled, via: "Retry in a cancelled batch", prep: cancelled, act: (*subject).retry},
		{from: processing, to: canceled, via: "Claim after the lease expired in a cancelled batch", prep: cancelledAndLeaseExpired, act: claimStart},
		{from: processing, to: superseded, via: "Supersede", act: (*subject).supersede},
		{from: processing, to: expired, via: "Expire", act: (*subject).expire},
		{from: processing, to: expired, via: "Claim past expires_at", prep: (*subject).pastDeadline, act: claimStart},

		{from: canceled, to: completed, via: "Complete by the holder", act: (*subject).complete},
		{from: canceled, to: failed, via: "Fail by the holder", act: (*subject).fail},
		{from: canceled, to: failed, via: "ForceFail", act: (*subject).forceFail},

		{from: failed, to: superseded, via: "Supersede", act: (*subject).supersede},
	}

	covered := map[lifecycle.Edge]bool{}
	for _, tc := range cases {
		if tc.through == "" {
			require.True(t, lifecycle.CanTransition(tc.from, tc.to), "case %s → %s via %s is not in the table", tc.from, tc.to, tc.via)
		} else {
			require.True(t, lifecycle.CanTransition(tc.from, tc.through) && lifecycle.CanTransition(tc.through, tc.to),
				"case %s → %s → %s via %s is not two edges of the table", tc.from, tc.through, tc.to, tc.via)
		}
		if move, err := lifecycle.CheckTransition(tc.from, tc.to); err == nil {
			covered[lifecycle.Edge{From: tc.from, To: tc.to, Move: move}] = true
		}
	}
	for _, e := range lifecycle.Transitions {
		require.True(t, covered[e], "edge %s → %s (%s) has no store path in this test", e.From, e.To, e.Move)
	}

	for _, tc := range cases {
		t.Run(fmt.Sprintf("%s to %s via %s", tc.from, tc.to, tc.via), func(t *testing.T) {
			t.Parallel()
			s := bring(t, root.fork(t), tc.from)
			if tc.prep != nil {
				tc.prep(s)
			}
			require.Equal(t, tc.from, s.state(), "before the move")

			r := tc.act(s)
			require.NoError(t, r.err)
			got, moved := r.moved()
			require.True(t, moved, "the store made no move: %+v", r)
			require.Equal(t, tc.to, got)
			if !r.isClaim {
				require.Equal(t, tc.from, r.tr.Previous)
			}
			require.Equal(t, tc.to, s.state(), "the record")
			requireRecount(t, s.b, s.members)
			if tc.to.Terminal() {
				s.requireEndWritten()
			}
		})
	}
}

// TestMovesOutsideTheTableAreRefused makes calls that would move a request
// along a pair lifecycle.Transitions does not list and checks that the
// store refuses each: with the error named, or by answering without a move
// (a terminal write dropped, a claim meeting a terminal request), leaving
// the record and the counters as they were. The calls use the latest
// holder's own lease: what makes them illegal is the state alone.
func TestMovesOutsideTheTableAreRefused(t *testing.T) {
	t.Parallel()
	root := setup(t)
	type illegalCase struct {
		from, to lifecycle.State // to: where the call would move the request
		via      string
		prep     func(s *subject)
		act      func(s *subject) moveResult
		move     lifecycle.Move // set when the pair is legal but not by this move
		wantErr  error          // nil: answered without a move
	}
	const (
		pending    = lifecycle.StatePending
		claimed    = lifecycle.StateClaimed
		processing = lifecycle.StateProcessing
		completed  = lifecycle.StateCompleted
		failed     = lifecycle.StateFailed
		canceled   = lifecycle.StateCanceled
		superseded = lifecycle.StateSuperseded
		expired    = lifecycle.StateExpired
	)
	claimNoStart := func(s *subject) moveResult { return s.claim(false) }
	claimStart := func(s *subject) moveResult { return s.claim(true) }
	leaseExpired := func(s *subject) { s.b.clock.Advance(s.b.cfg.LeaseTTL + time.Second) }
	released := func(s *subject) { s.must(s.release()) }

	cases := []illegalCase{
		{from: completed, to: claimed, via: "Claim after the lease expired", prep: leaseExpired, act: claimNoStart},
		{from: completed, to: processing, via: "Claim with Start after the lease expired", prep: leaseExpired, act: claimStart},
		{from: completed, to: failed, via: "Fail", act: (*subject).fail},
		{from: completed, to: failed, via: "ForceFail", act: (*subject).forceFail},
		{from: completed, to: canceled, via: "Cancel", act: (*subject).cancel},
		{from: completed, to: canceled, via: "CancelRequest", act: (*subject).cancelRequest},
		{from: completed, to: superseded, via: "Supersede", act: (*subject).supersede},
		{from: completed, to: expired, via: "Expire", act: (*subject).expire},
		{from: completed, to: pending, via: "Release", act: (*subject).release},
		{from: completed, to: pending, via: "Retry", act: (*subject).retry},

		{from: failed, to: processing, via: "Claim with Start after the lease expired", prep: leaseExpired, act: claimStart},
		{from: failed, to: completed, via: "Complete", act: (*subject).complete},
		{from: failed, to: canceled, via: "CancelRequest", act: (*subject).cancelRequest},
		{from: failed, to: expired, via: "Expire", act: (*subject).expire},
		{from: failed, to: pending, via: "Release", act: (*subject).release},

		{from: superseded, to: processing, via: "Claim with Start after the lease expired", prep: leaseExpired, act: claimStart},
		{from: superseded, to: completed, via: "Complete by the fenced-out holder", act: (*subject).complete},
		{from: superseded, to: failed, via: "ForceFail", act: (*subject).forceFail},
		{from: superseded, to: canceled, via: "CancelRequest", act: (*subject).cancelRequest},

		{from: expired, to: processing, via: "Claim with Start after the lease expired", prep: leaseExpired, act: claimStart},
		{from: expired, to: completed, via: "Complete", act: (*subject).complete},
		{from: expired, to: failed, via: "ForceFail", act: (*subject).forceFail},
		{from: expired, to: superseded, via: "Supersede", act: (*subject).supersede},

		{from: canceled, to: claimed, via: "Claim after the lease expired", prep: leaseExpired, act: claimNoStart},
		{from: canceled, to: processing, via: "Claim with Start after the lease expired", prep: leaseExpired, act: claimStart},
		{from: canceled, to: expired, via: "Expire by the holder", act: (*subject).expire},
		{from: canceled, to: pending, via: "Release by the holder", act: (*subject).release},
		{from: canceled, to: pending, via: "Retry by the holder", act: (*subject).retry},
		{from: canceled, to: superseded, via: "Supersede", act: (*subject).supersede},

		{from: claimed, to: completed, via: "Complete", act: (*subject).complete, wantErr: state.ErrIllegalTransition},
		{from: claimed, to: pending, move: lifecycle.MoveRetry, via: "Retry", act: (*subject).retry, wantErr: state.ErrIllegalTransition},

		// A released request's last holder: its lease is no longer the record's.
		{from: pending, to: completed, via: "Complete by the last holder", prep: func(s *subject) {
			s.take(true)
			released(s)
		}, act: (*subject).complete, wantErr: state.ErrLeaseLost},
	}

	for _, tc := range cases {
		move, err := lifecycle.CheckTransition(tc.from, tc.to)
		require.True(t, err != nil || (tc.move != "" && move != tc.move),
			"case %s → %s via %s is a legal edge", tc.from, tc.to, tc.via)
		t.Run(fmt.Sprintf("%s to %s via %s", tc.from, tc.to, tc.via), func(t *testing.T) {
			t.Parallel()
			s := bring(t, root.fork(t), tc.from)
			if tc.prep != nil {
				tc.prep(s)
			}
			require.Equal(t, tc.from, s.state(), "before the call")
			counts := s.b.counts(t, "bt")

			r := tc.act(s)
			if tc.wantErr != nil {
				require.ErrorIs(t, r.err, tc.wantErr)
			} else {
				require.NoError(t, r.err)
				got, moved := r.moved()
				require.False(t, moved, "the store moved the request to %s", got)
				require.Equal(t, tc.from, got, "the answer names the state the request keeps")
			}
			require.Equal(t, tc.from, s.state(), "the record")
			require.Equal(t, counts, s.b.counts(t, "bt"), "the counters")
		})
	}
}
