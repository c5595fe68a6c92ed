package state

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrNotReplicated: a write reached the primary but not as many replicas
// as Config.WaitReplicas asks within WaitTimeout. It comes wrapped with
// ErrUnavailable: the write's durability is unknown, so the caller treats
// it like any write whose answer it did not get (retry; publish nothing
// on it).
var ErrNotReplicated = errors.New("state: write not confirmed by the replicas")

// replicaWait is the WAIT a write pipeline ends with (Config.WaitReplicas,
// WaitTimeout); replicas 0 sends none.
//
// WAIT blocks until the replicas acknowledged the replication offset the
// connection had reached with its last command. The pipeline's commands
// run on one connection, in order, so a WAIT sent last covers every write
// before it — and since redis-server records that offset after every
// command (7.0 does; pkg/state's wait tests check it), also the writes of
// other connections accepted before them, such as an earlier attempt of
// a write that a retry now finds done.
type replicaWait struct {
	replicas int
	timeout  time.Duration
}

func (w replicaWait) on() bool { return w.replicas > 0 }

// add appends the WAIT to pipe, last; nil when waiting is off.
func (w replicaWait) add(ctx context.Context, pipe redis.Pipeliner) *redis.IntCmd {
	if !w.on() {
		return nil
	}
	// A pipeline has no Wait method: the command is built as
	// cmdable.Wait builds it.
	cmd := redis.NewIntCmd(ctx, "wait", w.replicas, w.timeout.Milliseconds())
	_ = pipe.Process(ctx, cmd) // queued; the answer is read after Exec
	return cmd
}

// check is nil when cmd (from add) answered that enough replicas have the
// pipeline's writes, else an error wrapping ErrUnavailable and
// ErrNotReplicated.
func (w replicaWait) check(cmd *redis.IntCmd) error {
	if cmd == nil {
		return nil
	}
	n, err := cmd.Result()
	switch {
	case err != nil:
		return fmt.Errorf("%w: %w: WAIT: %w", ErrUnavailable, ErrNotReplicated, err)
	case n < int64(w.replicas):
		return fmt.Errorf("%w: %w: %d of %d replicas within %s", ErrUnavailable, ErrNotReplicated, n, w.replicas, w.timeout)
	}
	return nil
}

// exec runs pipe with the WAIT appended and returns what check makes
// of it, or the pipeline's error: for the few multi-command writes made
// outside the scripts (the batch indexes).
func (w replicaWait) exec(ctx context.Context, pipe redis.Pipeliner) error {
	wait := w.add(ctx, pipe)
	if _, err := pipe.Exec(ctx); err != nil {
		return err
	}
	return w.check(wait)
}
