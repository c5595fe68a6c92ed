package lifecycle_test

import (
	"fmt"
	"testing"

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

func TestHeld(t *testing.T) {
	ref := lifecycle.Ref{ID: "r"}
	lease := lifecycle.Lease{Owner: "pod", Token: 1}
	h := lifecycle.Held{Ref: ref, Lease: lease, Attempt: 1, State: lifecycle.StateClaimed}
	_, ok := h.Processing(t0)
	require.False(t, ok, "a claimed Held is not processing")

	p := lifecycle.Processing{Ref: ref, Lease: lease, Attempt: 1, StartedAt: t0}
	hp := p.Held()
	require.Equal(t, lifecycle.StateProcessing, hp.State)
	back, ok := hp.Processing(t0)
	require.True(t, ok)
	require.Equal(t, p, back)
	for _, s := range []lifecycle.State{h.State, hp.State} {
		require.True(t, s.InFlight())
	}
}
