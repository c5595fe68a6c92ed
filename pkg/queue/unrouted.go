package queue

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// unroutedGraceIntervals is how many discovery intervals a message of a
// model this worker cannot route must have waited before the worker
// reports it: time for a worker that routes the model to discover it and
// create its consumer.
const unroutedGraceIntervals = 5

// rejectUnrouted handles the messages of models this worker cannot route
// (ConsumeOptions.Routable), without creating a consumer, so a flood of
// bogus model names leaves no durable consumers behind. The rule, per
// model:
//
//   - a consumer of the model exists on the server: a worker that routes
//     the model created it (only those do) and pulls from it, or did within
//     Config.ModelInactiveThreshold. The messages are left to it.
//   - no consumer exists: no worker routes the model. Each message stored
//     for longer than unroutedGraceIntervals × Config.DiscoveryInterval is
//     reported to OnPoison as PoisonUnrouted (a body that is not a valid
//     request as PoisonMalformed) and deleted by sequence, as junk is.
//
// A pass handles at most maxJunkPerPass messages; a failed report keeps
// the message for the next pass. Several workers may report the same
// message, which OnPoison tolerates.
func (co *Consumer) rejectUnrouted(ctx context.Context, subjects []string, now time.Time) error {
	sort.Strings(subjects)
	grace := unroutedGraceIntervals * co.c.cfg.DiscoveryInterval
	budget := maxJunkPerPass
	served := map[string]bool{} // model token → a consumer exists
	var errs []error
	for _, subj := range subjects {
		if budget == 0 || ctx.Err() != nil {
			break
		}
		r, _ := co.c.subj.parseRequest(subj)
		busy, ok := served[r.modelToken]
		if !ok {
			_, err := co.stream.Consumer(ctx, consumerName(r.modelToken))
			switch {
			case errors.Is(err, jetstream.ErrConsumerNotFound):
			case err != nil:
				errs = append(errs, fmt.Errorf("queue: consumer of unrouted model %q: %w", r.model, err))
				continue
			default:
				busy = true
			}
			served[r.modelToken] = busy
		}
		if busy {
			continue
		}
		for seq := uint64(1); budget > 0 && ctx.Err() == nil; budget-- {
			msg, err := co.stream.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(subj))
			if errors.Is(err, jetstream.ErrMsgNotFound) {
				break
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("queue: read unrouted message on %s: %w", subj, err))
				break
			}
			if now.Sub(msg.Time) < grace {
				break // the later ones are younger still
			}
			p := Poison{Kind: PoisonUnrouted, Subject: subj, StreamSeq: msg.Sequence}
			req, derr := co.c.decodeRequest(subj, msg.Data)
			if derr != nil {
				p = co.c.malformed(subj, msg.Header, msg.Data, derr)
				p.StreamSeq = msg.Sequence
			} else {
				p.Request = req
			}
			if err := co.removeStored(ctx, p); err != nil {
				errs = append(errs, err)
				break
			}
			seq = msg.Sequence + 1
		}
	}
	return errors.Join(errs...)
}
