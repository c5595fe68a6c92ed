package queue

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/salvo-run/salvo/pkg/transport"
)

// Lag reads, for each model this instance fetches, its consumer's backlog:
// the messages not yet delivered plus those delivered and not acked, and the
// age of the oldest of them (the first message above the ack floor). Two
// requests to the server per model: callers poll it at a modest interval
// (the worker's metrics), never per message. A model whose consumer cannot
// be read is left out; the error names the last failure.
func (co *Consumer) Lag(ctx context.Context) ([]transport.ModelLag, error) {
	co.mu.Lock()
	loops := make([]*modelLoop, 0, len(co.models))
	for _, ml := range co.models {
		loops = append(loops, ml)
	}
	stream := co.stream
	co.mu.Unlock()
	c := co.c
	var (
		out     []transport.ModelLag
		lastErr error
	)
	for _, ml := range loops {
		cons, err := c.js.Consumer(ctx, c.names.requests, consumerName(ml.token))
		if err != nil {
			lastErr = err
			continue
		}
		info, err := cons.Info(ctx)
		if err != nil {
			lastErr = err
			continue
		}
		l := transport.ModelLag{Model: ml.model, Pending: info.NumPending + uint64(max(info.NumAckPending, 0))}
		if l.Pending > 0 {
			l.OldestAge, err = oldestAge(ctx, stream, info)
			if err != nil {
				lastErr = err
			}
		}
		out = append(out, l)
	}
	if lastErr != nil {
		return out, fmt.Errorf("queue: lag: %w", lastErr)
	}
	return out, nil
}

// oldestAge is the age of the consumer's first message above its ack floor.
func oldestAge(ctx context.Context, stream jetstream.Stream, info *jetstream.ConsumerInfo) (time.Duration, error) {
	filter := info.Config.FilterSubject
	if filter == "" && len(info.Config.FilterSubjects) == 1 {
		filter = info.Config.FilterSubjects[0]
	}
	var opts []jetstream.GetMsgOpt
	if filter != "" {
		opts = append(opts, jetstream.WithGetMsgSubject(filter))
	}
	msg, err := stream.GetMsg(ctx, info.AckFloor.Stream+1, opts...)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return max(time.Since(msg.Time), 0), nil
}
