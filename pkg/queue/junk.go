package queue

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/salvo-run/salvo/pkg/lifecycle"
)

// maxJunkPerPass bounds the junk messages one discovery pass rejects; the
// rest wait for the next pass.
const maxJunkPerPass = 64

// junkCause says why a subject under <p>.req. matches no model consumer,
// or returns nil when it does: <p>.req.<model>.<batch> with a model token
// that decodes. A longer subject under a valid model token is delivered by
// that model's consumer, which rejects it as malformed itself.
func junkCause(subject string) error {
	toks := strings.Split(subject, ".")
	if len(toks) < 4 {
		return fmt.Errorf("lifecycle: invalid request: %w", &lifecycle.FieldError{
			Field: "subject", Reason: fmt.Sprintf("%s is not <prefix>.req.<model>.<batch>", subject)})
	}
	if _, err := lifecycle.DecodeToken(toks[2]); err != nil {
		return fmt.Errorf("lifecycle: invalid request: %w", &lifecycle.FieldError{
			Field: "model", Reason: fmt.Sprintf("subject %s: model token: %v", subject, err)})
	}
	return nil
}

// rejectJunk fails and deletes, by stream sequence, up to maxJunkPerPass
// messages on subjects no model consumer fetches (junkCause), so they get
// neither a durable consumer nor a fetch loop. Each is recorded like any
// malformed message (OnMalformed, then a failed result when an id can be
// read) before it is deleted; a recording failure leaves the subject for
// the next pass. Several workers may reject the same message at once: the
// result is published with the request id as Nats-Msg-Id, so the stream's
// duplicate window keeps one copy, and OnMalformed must be idempotent.
func (co *Consumer) rejectJunk(ctx context.Context, subjects []string) error {
	sort.Strings(subjects)
	budget := maxJunkPerPass
	var errs []error
	for _, subj := range subjects {
		cause := junkCause(subj)
		if cause == nil {
			continue
		}
		for seq := uint64(1); budget > 0 && ctx.Err() == nil; budget-- {
			msg, err := co.stream.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(subj))
			if errors.Is(err, jetstream.ErrMsgNotFound) {
				break
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("queue: read junk message on %s: %w", subj, err))
				break
			}
			if err := co.c.recordMalformed(ctx, subj, msg.Header, msg.Data, cause, co.o.OnMalformed); err != nil {
				errs = append(errs, fmt.Errorf("queue: record junk message %d: %w", msg.Sequence, err))
				break
			}
			if err := co.stream.DeleteMsg(ctx, msg.Sequence); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
				errs = append(errs, fmt.Errorf("queue: delete junk message %d: %w", msg.Sequence, err))
				break
			}
			seq = msg.Sequence + 1
		}
	}
	return errors.Join(errs...)
}
