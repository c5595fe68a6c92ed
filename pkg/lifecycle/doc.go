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
// The per-state types (Pending, Claimed, Processing, …) carry exactly the
// methods of their legal moves, so a caller holding a Claimed cannot complete
// it without first starting it. The same matrix is exported as data
// (Transitions, CanTransition) for the store, which enforces it at runtime.
package lifecycle
