package queue

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/nats-io/nats.go/jetstream"
)

// maxJunkPerPass bounds the junk messages one discovery pass rejects; the
// rest wait for the next pass.
const maxJunkPerPass = 64

// rejectJunk reports and deletes, by stream sequence, up to maxJunkPerPass
// messages on subjects no model consumer fetches (subjects.parseRequest
// reads no decodable model token), so they get neither a durable consumer
// nor a fetch loop. Each is reported to OnPoison as malformed before it is
// deleted; a failed report leaves the subject for the next pass. Several
// workers may reject the same message at once, which OnPoison must
// tolerate (the result published for it carries MsgID(batch, id) as
// Nats-Msg-Id, so the stream keeps one copy).
func (co *Consumer) rejectJunk(ctx context.Context, subjects []string) error {
	sort.Strings(subjects)
	budget := maxJunkPerPass
	var errs []error
	for _, subj := range subjects {
		r, cause := co.c.subj.parseRequest(subj)
		if r.fetched() {
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
			p := co.c.malformed(subj, msg.Header, msg.Data, cause)
			p.StreamSeq = msg.Sequence
			if err := co.removeStored(ctx, p); err != nil {
				errs = append(errs, err)
				break
			}
			seq = msg.Sequence + 1
		}
	}
	return errors.Join(errs...)
}
