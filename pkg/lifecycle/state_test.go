package lifecycle_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/salvo-run/salvo/pkg/lifecycle"
)

// legal is the transition matrix written out independently of the package's
// Transitions table, straight from DESIGN.md §4 and the package comment.
var legal = map[[2]lifecycle.State]lifecycle.Move{
	{lifecycle.StatePending, lifecycle.StateClaimed}:       lifecycle.MoveClaim,
	{lifecycle.StateClaimed, lifecycle.StateClaimed}:       lifecycle.MoveReclaim,
	{lifecycle.StateProcessing, lifecycle.StateClaimed}:    lifecycle.MoveReclaim,
	{lifecycle.StateClaimed, lifecycle.StateProcessing}:    lifecycle.MoveStart,
	{lifecycle.StateClaimed, lifecycle.StatePending}:       lifecycle.MoveUnclaim,
	{lifecycle.StateProcessing, lifecycle.StatePending}:    lifecycle.MoveRetry,
	{lifecycle.StateProcessing, lifecycle.StateCompleted}:  lifecycle.MoveComplete,
	{lifecycle.StateCanceled, lifecycle.StateCompleted}:    lifecycle.MoveComplete,
	{lifecycle.StatePending, lifecycle.StateFailed}:        lifecycle.MoveFail,
	{lifecycle.StateClaimed, lifecycle.StateFailed}:        lifecycle.MoveFail,
	{lifecycle.StateProcessing, lifecycle.StateFailed}:     lifecycle.MoveFail,
	{lifecycle.StateCanceled, lifecycle.StateFailed}:       lifecycle.MoveFail,
	{lifecycle.StatePending, lifecycle.StateCanceled}:      lifecycle.MoveCancel,
	{lifecycle.StateClaimed, lifecycle.StateCanceled}:      lifecycle.MoveCancel,
	{lifecycle.StateProcessing, lifecycle.StateCanceled}:   lifecycle.MoveCancel,
	{lifecycle.StatePending, lifecycle.StateSuperseded}:    lifecycle.MoveSupersede,
	{lifecycle.StateClaimed, lifecycle.StateSuperseded}:    lifecycle.MoveSupersede,
	{lifecycle.StateProcessing, lifecycle.StateSuperseded}: lifecycle.MoveSupersede,
	{lifecycle.StateFailed, lifecycle.StateSuperseded}:     lifecycle.MoveSupersede,
	{lifecycle.StatePending, lifecycle.StateExpired}:       lifecycle.MoveExpire,
	{lifecycle.StateClaimed, lifecycle.StateExpired}:       lifecycle.MoveExpire,
	{lifecycle.StateProcessing, lifecycle.StateExpired}:    lifecycle.MoveExpire,
}

// TestTransitionMatrix checks every state × state pair: legal exactly when
// the table lists it, with the listed move; rejected otherwise with
// ErrIllegalTransition naming both states.
func TestTransitionMatrix(t *testing.T) {
	require.Len(t, lifecycle.States, 8)
	require.Len(t, lifecycle.Transitions, len(legal))
	seen := map[[2]lifecycle.State]bool{}
	for _, e := range lifecycle.Transitions {
		k := [2]lifecycle.State{e.From, e.To}
		require.False(t, seen[k], "pair %s → %s listed twice", e.From, e.To)
		seen[k] = true
	}
	for _, from := range lifecycle.States {
		for _, to := range lifecycle.States {
			name := fmt.Sprintf("%s→%s", from, to)
			want, ok := legal[[2]lifecycle.State{from, to}]
			require.Equal(t, ok, lifecycle.CanTransition(from, to), name)
			move, err := lifecycle.CheckTransition(from, to)
			if ok {
				require.NoError(t, err, name)
				require.Equal(t, want, move, name)
				continue
			}
			require.ErrorIs(t, err, lifecycle.ErrIllegalTransition, name)
			require.Contains(t, err.Error(), string(from), name)
			require.Contains(t, err.Error(), string(to), name)
			require.Empty(t, move, name)
		}
	}
}

// TestTransitionInvariants checks the rules of DESIGN.md §4 on the table.
func TestTransitionInvariants(t *testing.T) {
	for _, e := range lifecycle.Transitions {
		require.True(t, e.From.Valid() && e.To.Valid(), "%v", e)
		// Nothing moves a terminal request back to claimed or processing.
		if e.From.Terminal() {
			require.False(t, e.To.InFlight(), "%s → %s revives a terminal", e.From, e.To)
			require.NotEqual(t, lifecycle.StatePending, e.To, "%s → pending revives a terminal", e.From)
		}
		// completed is final; failed may only be superseded by a winning copy.
		require.NotEqual(t, lifecycle.StateCompleted, e.From, "completed is a hard terminal")
		if e.From == lifecycle.StateFailed {
			require.Equal(t, lifecycle.StateSuperseded, e.To)
		}
		// Only the soft terminal canceled may be replaced by a real result.
		if e.From.Terminal() && e.From != lifecycle.StateFailed {
			require.Equal(t, lifecycle.StateCanceled, e.From)
			require.True(t, e.To == lifecycle.StateCompleted || e.To == lifecycle.StateFailed)
		}
	}
	// Unknown states never transition.
	require.False(t, lifecycle.CanTransition("bogus", lifecycle.StateClaimed))
	require.False(t, lifecycle.CanTransition(lifecycle.StatePending, "bogus"))
}

func TestStatePredicates(t *testing.T) {
	tests := []struct {
		s                                lifecycle.State
		terminal, hardTerminal, inFlight bool
	}{
		{lifecycle.StatePending, false, false, false},
		{lifecycle.StateClaimed, false, false, true},
		{lifecycle.StateProcessing, false, false, true},
		{lifecycle.StateCompleted, true, true, false},
		{lifecycle.StateFailed, true, true, false},
		{lifecycle.StateCanceled, true, false, false},
		{lifecycle.StateSuperseded, true, true, false},
		{lifecycle.StateExpired, true, true, false},
	}
	require.Len(t, tests, len(lifecycle.States))
	for _, tt := range tests {
		require.True(t, tt.s.Valid(), tt.s)
		require.Equal(t, tt.terminal, tt.s.Terminal(), tt.s)
		require.Equal(t, tt.hardTerminal, tt.s.HardTerminal(), tt.s)
		require.Equal(t, tt.inFlight, tt.s.InFlight(), tt.s)
		got, err := lifecycle.ParseState(string(tt.s))
		require.NoError(t, err)
		require.Equal(t, tt.s, got)
	}
	for _, bad := range []string{"", "Pending", "cancelled", "running"} {
		_, err := lifecycle.ParseState(bad)
		require.Error(t, err, bad)
		require.False(t, lifecycle.State(bad).Valid(), bad)
	}
}

// stateOf maps a per-state type to the State it stands for.
func stateOf(t *testing.T, v any) lifecycle.State {
	t.Helper()
	switch v.(type) {
	case lifecycle.Pending:
		return lifecycle.StatePending
	case lifecycle.Claimed:
		return lifecycle.StateClaimed
	case lifecycle.Processing:
		return lifecycle.StateProcessing
	case lifecycle.Completed:
		return lifecycle.StateCompleted
	case lifecycle.Failed:
		return lifecycle.StateFailed
	case lifecycle.Canceled:
		return lifecycle.StateCanceled
	case lifecycle.Superseded:
		return lifecycle.StateSuperseded
	case lifecycle.Expired:
		return lifecycle.StateExpired
	}
	t.Fatalf("no state for %T", v)
	return ""
}

// TestTypestateMethodsAreLegalEdges calls every per-state method and checks
// that the produced type's state is a legal successor of the receiver's in
// the Transitions table, and that the data carried along is right.
func TestTypestateMethodsAreLegalEdges(t *testing.T) {
	ref := lifecycle.Ref{ID: "req-1", BatchID: "batch-1"}
	lease := lifecycle.Lease{Owner: "pod-a", Token: 7, Expires: t0.Add(time.Minute)}
	f := lifecycle.Failure{Code: lifecycle.CodeNonRetriableStatus, Status: 400, Message: "bad"}
	pend := lifecycle.Pending{Ref: ref, Attempt: 2}
	claimed := pend.Claim(lease)
	proc := claimed.Start(t0)
	canceled := proc.Cancel(t0)
	failed := proc.Fail(f, t0)

	moves := []struct {
		name string
		from any
		to   any
	}{
		{"Pending.Claim", pend, pend.Claim(lease)},
		{"Pending.Cancel", pend, pend.Cancel(t0)},
		{"Pending.Expire", pend, pend.Expire(t0)},
		{"Pending.Fail", pend, pend.Fail(f, t0)},
		{"Claimed.Start", claimed, claimed.Start(t0)},
		{"Claimed.Unclaim", claimed, claimed.Unclaim()},
		{"Claimed.Fail", claimed, claimed.Fail(f, t0)},
		{"Claimed.Cancel", claimed, claimed.Cancel(t0)},
		{"Claimed.Expire", claimed, claimed.Expire(t0)},
		{"Processing.Complete", proc, proc.Complete(200, t0)},
		{"Processing.Fail", proc, proc.Fail(f, t0)},
		{"Processing.Retry", proc, proc.Retry(t0.Add(time.Second))},
		{"Processing.Release", proc, proc.Release()},
		{"Processing.Cancel", proc, proc.Cancel(t0)},
		{"Processing.Expire", proc, proc.Expire(t0)},
		{"Canceled.Complete", canceled, canceled.Complete(3, 200, t0)},
		{"Canceled.Fail", canceled, canceled.Fail(3, f, t0)},
		{"Failed.Supersede", failed, failed.Supersede("req-1-esc", t0)},
	}
	for _, m := range moves {
		from, to := stateOf(t, m.from), stateOf(t, m.to)
		require.True(t, lifecycle.CanTransition(from, to), "%s produces illegal %s → %s", m.name, from, to)
	}

	// Data carried through the moves.
	require.Equal(t, lifecycle.Claimed{Ref: ref, Lease: lease, Attempt: 2}, claimed)
	require.Equal(t, lifecycle.Processing{Ref: ref, Lease: lease, Attempt: 2, StartedAt: t0}, proc)
	require.Equal(t, 3, proc.Complete(200, t0).Attempt, "completing spends the attempt")
	require.Equal(t, 3, proc.Fail(f, t0).Attempt, "failing spends the attempt")
	retry := proc.Retry(t0.Add(time.Second))
	require.Equal(t, 3, retry.Attempt, "a retry spends the attempt")
	require.Equal(t, t0.Add(time.Second), retry.NotBefore)
	require.Equal(t, 2, proc.Release().Attempt, "a release spends no attempt")
	require.Equal(t, 2, claimed.Unclaim().Attempt, "an unclaim spends no attempt")
	require.Equal(t, 2, pend.Fail(f, t0).Attempt)
	require.Equal(t, "req-1-esc", failed.Supersede("req-1-esc", t0).SupersededBy)
	require.Equal(t, f, failed.Failure)
}

func TestHeld(t *testing.T) {
	ref := lifecycle.Ref{ID: "r"}
	lease := lifecycle.Lease{Owner: "pod", Token: 1}
	c := lifecycle.Pending{Ref: ref, Attempt: 1}.Claim(lease)
	h := c.Held()
	require.Equal(t, lifecycle.StateClaimed, h.State)
	_, ok := h.Processing(t0)
	require.False(t, ok, "a claimed Held is not processing")

	p := c.Start(t0)
	hp := p.Held()
	require.Equal(t, lifecycle.StateProcessing, hp.State)
	back, ok := hp.Processing(t0)
	require.True(t, ok)
	require.Equal(t, p, back)
	for _, s := range []lifecycle.State{h.State, hp.State} {
		require.True(t, s.InFlight())
	}
}
