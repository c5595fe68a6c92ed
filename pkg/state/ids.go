package state

import (
	"errors"
	"fmt"
	"strings"

	"github.com/salvo-run/salvo/pkg/lifecycle"
)

// ErrInvalidID: a batch or request id is empty, too long, or contains a
// brace, whitespace or a control character. Ids go inside Redis hash tags
// ({<batch>}), so a brace would scatter a batch's keys across cluster slots
// and a space could collide with the batchless tag ("~ <id>").
var ErrInvalidID = errors.New("state: invalid id")

// checkID applies lifecycle's id rules (lifecycle.Request.Validate) to one
// id; field names it in the error.
func checkID(field, id string) error {
	switch {
	case id == "":
		return fmt.Errorf("%w: %s is required", ErrInvalidID, field)
	case len(id) > lifecycle.MaxIDLength:
		return fmt.Errorf("%w: %s is longer than %d bytes", ErrInvalidID, field, lifecycle.MaxIDLength)
	case strings.ContainsAny(id, "{}"):
		return fmt.Errorf("%w: %s %q must not contain '{' or '}'", ErrInvalidID, field, id)
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; c <= ' ' || c >= 0x7f {
			return fmt.Errorf("%w: %s %q must be printable ASCII without spaces", ErrInvalidID, field, id)
		}
	}
	return nil
}

// checkRef checks a request ref's ids; a batchless ref has no batch id.
func checkRef(ref lifecycle.Ref) error {
	if err := checkID("request id", ref.ID); err != nil {
		return err
	}
	if ref.BatchID != "" {
		return checkID("batch id", ref.BatchID)
	}
	return nil
}
