package state

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/salvo-run/salvo/internal/testredis"
)

// echo returns its key and its argument, so each caller can check it got
// its own reply out of a shared pipeline.
var echo = redis.NewScript(`redis.call('INCR', KEYS[1]) return {KEYS[1], ARGV[1]}`)

func TestGrouperSharesPipelines(t *testing.T) {
	rd := testredis.New(t)
	g := newGrouper(rd.Client, replicaWait{})
	ctx := context.Background()

	// Every flush slot taken: the callers queue, and one drive sends them
	// all in one pipeline.
	for range groupFlushes {
		g.slots <- struct{}{}
	}
	const n = 50
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			key := fmt.Sprintf("%s:echo:%d", rd.Prefix, i)
			v, err := g.run(ctx, echo, []string{key}, []any{i})
			if err != nil {
				errs <- err
				return
			}
			if got := fmt.Sprint(v); got != fmt.Sprintf("[%s %d]", key, i) {
				errs <- fmt.Errorf("call %d got %s", i, got)
			}
		})
	}
	require.Eventually(t, func() bool {
		g.mu.Lock()
		defer g.mu.Unlock()
		return len(g.pending) == n
	}, 10*time.Second, 5*time.Millisecond)
	for range groupFlushes {
		<-g.slots
	}
	g.drive(nil)
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.Equal(t, int64(1), g.pipelines.Load(), "the queued calls shared one pipeline")
	for i := range n {
		v, err := rd.Client.Get(ctx, fmt.Sprintf("%s:echo:%d", rd.Prefix, i)).Int()
		require.NoError(t, err)
		require.Equal(t, 1, v, "call %d ran exactly once", i)
	}
}

func TestGrouperSkipsAbandonedCalls(t *testing.T) {
	rd := testredis.New(t)
	g := newGrouper(rd.Client, replicaWait{})
	for range groupFlushes {
		g.slots <- struct{}{}
	}
	gone, cancel := context.WithCancel(context.Background())
	abandoned := make(chan error, 1)
	go func() {
		_, err := g.run(gone, echo, []string{rd.Prefix + ":gone"}, []any{0})
		abandoned <- err
	}()
	require.Eventually(t, func() bool {
		g.mu.Lock()
		defer g.mu.Unlock()
		return len(g.pending) == 1
	}, 10*time.Second, 5*time.Millisecond)
	cancel()
	require.ErrorIs(t, <-abandoned, context.Canceled)
	for range groupFlushes {
		<-g.slots
	}
	v, err := g.run(context.Background(), echo, []string{rd.Prefix + ":kept"}, []any{1})
	require.NoError(t, err)
	require.Equal(t, fmt.Sprintf("[%s:kept 1]", rd.Prefix), fmt.Sprint(v))
	n, err := rd.Client.Exists(context.Background(), rd.Prefix+":gone").Result()
	require.NoError(t, err)
	require.Zero(t, n, "a call whose caller stopped waiting before its flush is not sent")
}

func TestGrouperReloadsFlushedScripts(t *testing.T) {
	rd := testredis.New(t)
	g := newGrouper(rd.Client, replicaWait{})
	ctx := context.Background()
	_, err := g.run(ctx, echo, []string{rd.Prefix + ":a"}, []any{1})
	require.NoError(t, err)
	require.NoError(t, rd.Client.ScriptFlush(ctx).Err())
	v, err := g.run(ctx, echo, []string{rd.Prefix + ":a"}, []any{2})
	require.NoError(t, err, "NOSCRIPT after a flush is answered by loading the script again")
	require.Equal(t, fmt.Sprintf("[%s:a 2]", rd.Prefix), fmt.Sprint(v))
}
