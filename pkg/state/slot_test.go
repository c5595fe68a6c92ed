package state_test

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/salvo-run/salvo/pkg/lifecycle"
	"github.com/salvo-run/salvo/pkg/state"
)

// crc16 is CRC-16/XMODEM, the checksum Redis Cluster hashes keys with.
func crc16(b []byte) uint16 {
	var crc uint16
	for _, c := range b {
		crc ^= uint16(c) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}

// clusterSlot is the Redis Cluster slot of key, honouring the first
// non-empty {hash tag}.
func clusterSlot(key string) int {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			key = key[i+1 : i+1+j]
		}
	}
	return int(crc16([]byte(key)) % 16384)
}

func TestClusterSlotHelper(t *testing.T) {
	t.Parallel()
	require.Equal(t, uint16(0x31C3), crc16([]byte("123456789")), "CRC-16/XMODEM check value")
	require.Equal(t, clusterSlot("foo"), clusterSlot("x{foo}y"))
	require.Equal(t, clusterSlot("{}a"), int(crc16([]byte("{}a"))%16384), "an empty tag hashes the whole key")
}

// scriptCalls records the KEYS of every EVAL/EVALSHA the client sends.
type scriptCalls struct {
	mu      sync.Mutex
	calls   [][]string
	scripts map[string]bool
}

func (h *scriptCalls) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) { return next(ctx, network, addr) }
}

func (h *scriptCalls) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.record(cmd)
		return next(ctx, cmd)
	}
}

func (h *scriptCalls) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		for _, c := range cmds {
			h.record(c)
		}
		return next(ctx, cmds)
	}
}

func (h *scriptCalls) record(cmd redis.Cmder) {
	args := cmd.Args()
	name := strings.ToLower(fmt.Sprint(args[0]))
	if name != "eval" && name != "evalsha" {
		return
	}
	id := fmt.Sprint(args[1])
	if name == "eval" {
		sum := sha1.Sum([]byte(id))
		id = hex.EncodeToString(sum[:])
	}
	n, _ := strconv.Atoi(fmt.Sprint(args[2]))
	keys := make([]string, n)
	for i := range n {
		keys[i] = fmt.Sprint(args[3+i])
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.calls = append(h.calls, keys)
	h.scripts[id] = true
}

// TestEveryScriptCallHashesToOneSlot drives every script of the store
// (including request scripts meeting ids with braces, and batchless
// requests) and checks that the KEYS of each call hash to one cluster slot.
func TestEveryScriptCallHashesToOneSlot(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := ctxT(t)
	hook := &scriptCalls{scripts: map[string]bool{}}
	b.redis.Client.AddHook(hook)

	ids := []string{"r1", "r{2}", "r}3", "r4", "r5", "r6", "r7"}
	b.createBatch(t, "plain", int64(len(ids)))
	for i, id := range ids {
		req := request(id, "plain")
		req.ExpiresAt = time.Time{} // the batch's deadline applies
		switch i {
		case 0:
			p := b.claim(t, req, "w")
			require.NoError(t, b.store.Refresh(ctx, []lifecycle.Held{p.Held()})[0])
			_, err := b.store.Complete(ctx, p, state.Outcome{Status: 200, Result: []byte("x")})
			require.NoError(t, err)
			require.NoError(t, errOf(b.store.MarkPublished(ctx, []lifecycle.Ref{req.Ref()})))
		case 1:
			p := b.claim(t, req, "w")
			_, err := b.store.Retry(ctx, p, failure(lifecycle.CodeRetriableStatus, 500), time.Time{})
			require.NoError(t, err)
			p = b.claim(t, req, "w")
			_, err = b.store.Release(ctx, p.Held(), true)
			require.NoError(t, err)
			p = b.claim(t, req, "w")
			_, err = b.store.Fail(ctx, p.Held(), state.Outcome{Failure: failure(lifecycle.CodeNonRetriableStatus, 400)})
			require.NoError(t, err)
		case 2:
			p := b.claim(t, req, "w")
			_, err := b.store.Cancel(ctx, p.Held(), state.Outcome{})
			require.NoError(t, err)
		case 3:
			p := b.claim(t, req, "w")
			_, err := b.store.Expire(ctx, p.Held(), state.Outcome{})
			require.NoError(t, err)
		case 4:
			_, err := b.store.ForceFail(ctx, req, state.Outcome{Failure: failure(lifecycle.CodeMalformedMessage, 0)})
			require.NoError(t, err)
		case 5:
			_, err := b.store.CancelRequest(ctx, req.Ref())
			require.NoError(t, err)
		case 6:
			p := b.claim(t, req, "w")
			tr, err := b.store.EndStranded(ctx, req.Ref(), p.Lease.Expires, lifecycle.StateExpired,
				failure(lifecycle.CodeBatchExpired, 0))
			require.NoError(t, err)
			require.True(t, tr.Applied)
		}
	}
	_, err := b.store.Supersede(ctx, lifecycle.Ref{ID: "r4", BatchID: "plain"}, "copy")
	require.NoError(t, err)
	_, err = b.store.CancelBatch(ctx, "plain")
	require.NoError(t, err)
	_, err = b.store.FinishBatch(ctx, "plain")
	require.NoError(t, err)
	_, err = b.store.ClaimBatchEvent(ctx, "plain", lifecycle.EventCreated, 0)
	require.NoError(t, err)
	require.NoError(t, b.store.BatchEventDone(ctx, "plain", lifecycle.EventCreated))

	b.createOpen(t, "open")
	_, _, err = b.store.SealBatch(ctx, "open", 1)
	require.NoError(t, err)
	b.clock.Advance(25 * time.Hour)
	_, err = b.store.ExpireBatch(ctx, "open")
	require.NoError(t, err)

	// Batch ids with braces are refused where batches are created, so a
	// request naming one never finds its batch; the request scripts still
	// meet them.
	for _, batch := range []string{"br}ace", "{open", "x{y}z"} {
		_, _, err := b.store.CreateBatch(ctx, state.NewBatch{ID: batch, CreatedAt: base, ExpiresAt: base.Add(time.Hour), Total: 7})
		require.ErrorIs(t, err, state.ErrInvalidBatch)
		for _, id := range []string{"r1", "r{2}"} {
			req := request(id, batch)
			_, err := b.claimOf(t, req, "w")
			require.ErrorIs(t, err, lifecycle.ErrNoBatch)
			_, err = b.store.ForceFail(ctx, req, state.Outcome{Failure: failure(lifecycle.CodeMalformedMessage, 0)})
			require.NoError(t, err)
			require.Equal(t, lifecycle.StateFailed, b.ended(t, req, "w").State)
			require.NoError(t, errOf(b.store.MarkPublished(ctx, []lifecycle.Ref{req.Ref()})))
		}
		_, err = b.store.CancelBatch(ctx, batch)
		require.ErrorIs(t, err, state.ErrInvalidID)
		_, err = b.store.CancelRequest(ctx, lifecycle.Ref{ID: "r1", BatchID: batch})
		require.ErrorIs(t, err, state.ErrInvalidID)
	}
	for _, id := range []string{"solo", "so}lo", "{solo"} {
		req := request(id, "")
		req.ExpiresAt = time.Time{}
		p := b.claim(t, req, "w")
		_, err := b.store.Complete(ctx, p, state.Outcome{Status: 200})
		require.NoError(t, err)
	}
	for _, model := range []string{"gpt-4o", "meta/llama{3}"} {
		_, err := b.store.AcquireModelSlot(ctx, model, "h", 2, time.Minute)
		require.NoError(t, err)
		require.NoError(t, b.store.RefreshModelSlots(ctx, model, []string{"h"}, time.Minute))
	}
	held, err := b.store.HoldSweepLock(ctx, "h", time.Minute)
	require.NoError(t, err)
	require.True(t, held)

	hook.mu.Lock()
	defer hook.mu.Unlock()
	require.Len(t, hook.scripts, 18, "every script of the store was exercised")
	for _, keys := range hook.calls {
		require.NotEmpty(t, keys)
		for _, k := range keys[1:] {
			require.Equal(t, clusterSlot(keys[0]), clusterSlot(k), "keys %q span slots", keys)
		}
	}
}
