package queue_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/salvo-run/salvo/pkg/queue"
	"github.com/salvo-run/salvo/pkg/transport"
)

// Kill and restart the server mid-consumption: the fetch loops notice,
// recreate their consumer and carry on; every request is handled and the
// stream ends empty. Handlers record an id before acking, because a double
// ack cut by the restart may have been applied by the server anyway. An ack
// the shutdown cut between consumer and stream leaves its message stored
// below the ack floor: the orphan sweep removes it (orphans_test.go).
//
// Not parallel: the restarted server takes its old port back, which a
// server started meanwhile by a parallel test could have been given.
func TestServerRestartMidConsumptionResumes(t *testing.T) {
	if testing.Short() {
		t.Skip("restarts a server")
	}
	b := setup(t)
	handled := newIDSet()
	var started atomic.Int32
	co := consume(t, b.c, queue.ConsumeOptions{
		Slots: newSlotTable(4).get,
		Handler: func(ctx context.Context, d transport.Delivery) {
			started.Add(1)
			time.Sleep(10 * time.Millisecond) //nolint:forbidigo // stands for the handler's work, not a wait
			handled.add(d.Request().ID)
			_ = d.Ack(ctx) // may fail across the restart: then AckWait redelivers
		},
	})
	const n = 120
	ids := publishN(t, b.c, "r", "m", "b", n/2)
	ids = append(ids, publishN(t, b.c, "q", "other-model", "b", n/2)...)
	// Restart early in the run: poll fast.
	waitFor(t, eventually, "ten handled", func() bool { return handled.len() >= 10 })
	require.Less(t, handled.len(), n, "consumption finished before the restart; raise n")

	b.srv.Restart()

	waitFor(t, 30*time.Second, "every request handled", func() bool { return handled.len() == n })
	for _, id := range ids {
		require.GreaterOrEqual(t, handled.count(id), 1, id)
	}
	waitFor(t, eventually, "the requests stream to empty", streamEmpty(t, b.js, "SALVO_REQUESTS"))
	waitFor(t, eventually, "healthy", func() bool { return co.Healthy() == nil })
	t.Logf("handler runs: %d for %d requests (redeliveries after the restart)", started.Load(), n)
}
