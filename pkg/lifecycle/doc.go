// Package lifecycle is salvo's vocabulary: the request and batch data that
// travel on the wire, the states a request moves through and the legal moves
// between them, the reasons a request fails, and the retry policy as pure
// functions.
//
// Every other package imports lifecycle; lifecycle imports only the standard
// library. Nothing here performs I/O or reads the wall clock: time always
// comes in as an argument.
//
// # States
//
//	pending ──claim──▶ claimed ──start──▶ processing ──complete──▶ completed
//	   ▲                 │  ▲                 │ │ │
//	   └─────unclaim─────┘  └─────reclaim─────┘ │ └──fail──▶ failed
//	   ▲                                        │
//	   └───────────────retry────────────────────┘
//
//	pending | claimed | processing ──cancel──▶ canceled (soft: a late real result replaces it)
//	pending | claimed | processing | failed ──supersede──▶ superseded
//	pending | claimed | processing ──expire──▶ expired
//
// completed and failed are hard terminals: the first terminal result wins and
// later terminal writes are dropped. canceled is soft: work that ran anyway and
// produced a completed or failed result replaces the cancel. Nothing moves a
// terminal request back to claimed or processing.
//
// The same matrix is exported as data (Transitions, CanTransition,
// CheckTransition). Where a state decides what a caller may do, it is a type:
// the store's moves take Held (a request held under a lease, claimed or
// processing) or Processing, so only a holder whose claim started the
// request can complete it or retry it — the compiler refuses the rest.
//
// # What the store enforces
//
// pkg/state makes every edge of Transitions with a compare-and-set Lua
// script (state, lease owner, fencing token) and refuses every pair the
// table does not list: a call that would make one fails
// (state.ErrIllegalTransition, state.ErrLeaseLost) or answers without a
// move (a terminal write dropped, a claim that meets a terminal request).
// TestEveryLegalEdgeHasAStorePath and TestMovesOutsideTheTableAreRefused in
// pkg/state drive the table through the scripts. Two qualifications:
//
//   - The store has no start of its own. claimed → processing happens only
//     inside a claim with state.ClaimArgs.Start, which makes claim (or
//     reclaim) and start in one script: pending → processing, and an expired
//     lease claimed or processing → processing, are two edges of the table
//     in one step. A request claimed without Start stays claimed until its
//     holder ends or releases it, or a reclaim after its lease expired.
//   - The store checks the move, not only the pair: Retry of a claimed
//     request is refused although claimed → pending is legal as an unclaim
//     (Release).
//
// # The store's answers
//
// The values the store answers with (Record, Claim, Ended, Transition) and
// takes (ClaimArgs, Outcome), and the errors callers branch on (ErrLeaseLost,
// ErrUnavailable, *LeaseHeldError, …), are defined here and aliased by
// pkg/state, so the engine can depend on the store through an interface
// without linking a Redis client.
package lifecycle
