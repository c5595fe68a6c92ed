package lifecycle

import "strings"

// CopySuffix ends the id of a racing copy (escalation, mode race): the
// copy of request "r-1" is "r-1~esc", in the same batch. The id is
// derived, so at most one copy per original exists and every worker finds
// a copy's original (and an original's copy) without reading Redis first.
// A request the client named with this suffix is not a copy: only a record
// whose escalated_from names the original is.
const CopySuffix = "~esc"

// CopyID is the id of the racing copy of the request id, and false when
// that id would exceed MaxIDLength (such a request is not escalated).
func CopyID(id string) (string, bool) {
	c := id + CopySuffix
	return c, len(c) <= MaxIDLength
}

// OriginalID is the id of the original of a racing copy's id, and false
// when id does not have the copy's form.
func OriginalID(id string) (string, bool) {
	o, ok := strings.CutSuffix(id, CopySuffix)
	return o, ok && o != ""
}

// PartnerID is the id of the other half of a racing pair id may belong to:
// the original of a copy id, else the copy id of an original ("" when it
// would be too long).
func PartnerID(id string) string {
	if o, ok := OriginalID(id); ok {
		return o
	}
	if c, ok := CopyID(id); ok {
		return c
	}
	return ""
}

// ReplacesLine reports whether the result line next replaces the line prev
// already read for the same request in a client's output: one line per
// request (per custom_id) always, and a completed line replaces one that is
// not completed. That happens once, by escalation: an original's failure
// was published before its racing copy completed; the copy's line (the
// original's id and custom_id, escalation_id set) then overturns it.
// Otherwise the first line stands.
func ReplacesLine(prev, next *Result) bool {
	return next.State == StateCompleted && prev.State != StateCompleted
}
