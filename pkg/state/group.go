package state

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Group commit of script calls. Every worker handler makes its own claim and
// terminal write, and with tens or hundreds of handlers most of the cost of
// a lone EVALSHA is the round trip around it: a write and a read syscall on
// each side, a scheduler wake-up, redis-server's per-request overhead. The
// grouper sends the calls of concurrent callers together as one pipeline:
// a call queued while no pipeline is in flight goes out at once (a lone call
// waits for no timer), and the calls queued while pipelines are in flight
// ride together in the next one. At most groupFlushes pipelines are in
// flight, so a burst of callers turns into a few large pipelines rather
// than many small ones. Each call keeps its own reply and error.
//
// There is no long-lived goroutine: the caller that finds a flush slot free
// sends the queue itself until its own answer is in, and a goroutine that
// ends with the queue takes over what is still waiting then (drive), so
// the grouper needs no Close and leaks nothing.
const (
	// groupFlushes bounds the pipelines in flight at once.
	groupFlushes = 4
	// groupMax bounds the calls in one pipeline.
	groupMax = 128
)

// groupCall is one queued script call and where its outcome goes.
type groupCall struct {
	ctx  context.Context
	call scriptCall
	done chan groupResult
}

type groupResult struct {
	v   any
	err error
}

// grouper queues script calls and sends them in shared pipelines.
type grouper struct {
	client redis.UniversalClient
	wait   replicaWait   // ends every pipeline (wait.go)
	slots  chan struct{} // a token per flush in flight

	mu      sync.Mutex
	pending []*groupCall

	pipelines atomic.Int64 // pipelines sent, for tests and metrics
}

func newGrouper(client redis.UniversalClient, wait replicaWait) *grouper {
	return &grouper{client: client, wait: wait, slots: make(chan struct{}, groupFlushes)}
}

var groupCallPool = sync.Pool{New: func() any { return &groupCall{done: make(chan groupResult, 1)} }}

// run queues one script call and returns its result once the pipeline that
// carried it answered, or ctx's error if ctx ends first (the call may still
// go out: like any command whose caller stopped waiting, its effect is
// unknown to the caller).
func (g *grouper) run(ctx context.Context, sc *redis.Script, keys []string, args []any) (any, error) {
	c := groupCallPool.Get().(*groupCall)
	c.ctx, c.call = ctx, scriptCall{script: sc, keys: keys, args: args}
	g.mu.Lock()
	g.pending = append(g.pending, c)
	g.mu.Unlock()
	g.drive(c)
	select {
	case r := <-c.done:
		c.ctx, c.call = nil, scriptCall{}
		groupCallPool.Put(c)
		return r.v, r.err
	case <-ctx.Done():
		// The call stays with the flush that took or will take it, which
		// sends its result into done (buffered) and drops it; c is not
		// reused.
		return nil, context.Cause(ctx)
	}
}

// drive sends the queued calls for as long as some are waiting and a flush
// slot is free. A caller that finds every slot taken leaves its call to the
// flushes in flight: each looks at the queue again before it gives its
// slot back, and again after, so no call is left behind. A caller (own)
// drives only until its own answer is in or its context ended: if calls
// are still waiting then, a new goroutine takes over the driving, so no
// caller is held up by other callers' pipelines past its own.
func (g *grouper) drive(own *groupCall) {
	done := func() bool { return own != nil && (len(own.done) > 0 || own.ctx.Err() != nil) }
	for {
		select {
		case g.slots <- struct{}{}:
		default:
			return // every slot is flushing; one of them takes the queue
		}
		for !done() && g.flushOnce() {
		}
		<-g.slots
		g.mu.Lock()
		empty := len(g.pending) == 0
		g.mu.Unlock()
		if empty {
			return
		}
		if done() {
			go g.drive(nil)
			return
		}
	}
}

// flushOnce sends up to groupMax queued calls in one pipeline and reports
// whether it sent any.
func (g *grouper) flushOnce() bool {
	g.mu.Lock()
	n := min(len(g.pending), groupMax)
	if n == 0 {
		g.mu.Unlock()
		return false
	}
	batch := make([]*groupCall, n)
	copy(batch, g.pending)
	rest := copy(g.pending, g.pending[n:])
	clear(g.pending[rest:])
	g.pending = g.pending[:rest]
	g.mu.Unlock()

	// Calls whose caller stopped waiting are not sent. The pipeline's
	// context keeps the first call's values and carries the latest
	// deadline of the group, so one caller's cancellation or short
	// deadline does not cut the others' commands.
	live := batch[:0]
	var latest time.Time
	unbounded := false
	for _, c := range batch {
		if err := c.ctx.Err(); err != nil {
			c.done <- groupResult{err: context.Cause(c.ctx)}
			continue
		}
		if d, ok := c.ctx.Deadline(); !ok {
			unbounded = true
		} else if d.After(latest) {
			latest = d
		}
		live = append(live, c)
	}
	if len(live) == 0 {
		return true
	}
	ctx := context.WithoutCancel(live[0].ctx)
	if !unbounded {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, latest)
		defer cancel()
	}
	calls := make([]scriptCall, len(live))
	for i, c := range live {
		calls[i] = c.call
	}
	g.pipelines.Add(1)
	for i, cmd := range runPipelined(ctx, g.client, g.wait, calls) {
		v, err := cmd.Result()
		live[i].done <- groupResult{v: v, err: err}
	}
	return true
}
