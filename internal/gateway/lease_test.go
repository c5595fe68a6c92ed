package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/salvo-run/salvo/internal/testnats"
)

// TestLeaseIsOneHoldingAtATime: a batch's work lease is held by one
// piece of work at a time — not a second one on the same gateway (a build
// starting as the validation ends), not another gateway, not the loser of
// a race for a lease that ran out — and is free again once the work gave
// it up in its last update, and finished work does not take it again.
func TestLeaseIsOneHoldingAtATime(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	nc := testnats.New(t).Connect()
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "LEASE_TEST"})
	require.NoError(t, err)
	gateway := func(id string) *Server { return &Server{id: id, kv: kv, log: zerolog.Nop()} }
	tn := tenant{name: "acme", ns: "acme"}
	// As createBatch records it: reserved, without an owner, for the
	// validation it starts.
	data, err := json.Marshal(batchRecord{ID: "batch_x", Tenant: "acme", LeaseUntil: time.Now().Add(leaseFor).UnixMilli()})
	require.NoError(t, err)
	_, err = kv.Create(ctx, recordKey(tn, "batch_x"), data)
	require.NoError(t, err)
	log := zerolog.Nop()

	a, b := gateway("a"), gateway("b")
	validated := func(r batchRecord) bool { return r.Validated }
	built := func(r batchRecord) bool { return r.Built }
	releaseValidate, ok := a.holdLease(ctx, tn, "batch_x", log, validated)
	require.True(t, ok, "a new batch's reserved lease")
	_, ok = a.holdLease(ctx, tn, "batch_x", log, built)
	require.False(t, ok, "a second holding on the same gateway")
	_, ok = b.holdLease(ctx, tn, "batch_x", log, built)
	require.False(t, ok, "another gateway")

	// The work gives the lease up in its last update; then it is free,
	// and the first holding's release does not touch the next one's.
	_, err = a.update(ctx, tn, "batch_x", func(r *batchRecord) bool { r.Validated, r.LeaseUntil = true, 0; return true })
	require.NoError(t, err)
	_, ok = b.holdLease(ctx, tn, "batch_x", log, validated)
	require.False(t, ok, "finished work is not taken again")
	releaseBuild, ok := a.holdLease(ctx, tn, "batch_x", log, built)
	require.True(t, ok, "free once given up, and not taken by the finished work")
	releaseValidate()
	_, ok = b.holdLease(ctx, tn, "batch_x", log, built)
	require.False(t, ok, "the build's lease survives the validation's release")
	releaseBuild()

	// Many gateways race for a lease that ran out: one wins.
	_, err = a.update(ctx, tn, "batch_x", func(r *batchRecord) bool { r.LeaseUntil = 1; return true })
	require.NoError(t, err)
	var wg sync.WaitGroup
	var mu sync.Mutex
	won := 0
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			release, ok := gateway(fmt.Sprintf("g%d", i)).holdLease(ctx, tn, "batch_x", log, built)
			if ok {
				defer release()
				mu.Lock()
				won++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	require.Equal(t, 1, won)
}
