package state

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/salvo-run/salvo/pkg/lifecycle"
)

// The sweep's reads and moves: the batches it watches, the lock of its
// leader, and the end of requests nobody will bring back. pkg/worker runs
// the sweep.

// HoldSweepLock takes the sweep's lock for holder, or keeps it when holder
// has it, for ttl. It reports whether holder holds the lock now.
func (s *Store) HoldSweepLock(ctx context.Context, holder string, ttl time.Duration) (bool, error) {
	n, err := scriptLock.Run(ctx, s.client, []string{s.keys.sweepLock()}, holder, ttl.Milliseconds()).Int()
	if err != nil {
		return false, opErr("sweep lock", holder, err)
	}
	return n == 1, nil
}

// LiveBatches lists up to limit ids of the batches the sweep watches,
// soonest expires_at first, from the offset-th on.
func (s *Store) LiveBatches(ctx context.Context, offset, limit int64) ([]string, error) {
	ids, err := s.client.ZRange(ctx, s.keys.batchesLive(), offset, offset+limit-1).Result()
	if err != nil {
		return nil, opErr("live batches", "", err)
	}
	return ids, nil
}

// DropLive stops watching a batch: it is final with its events out, or
// gone by retention.
func (s *Store) DropLive(ctx context.Context, id string) error {
	if err := s.client.ZRem(ctx, s.keys.batchesLive(), id).Err(); err != nil {
		return opErr("drop live batch", id, err)
	}
	return nil
}

// BatchEventsOut reports whether both events of a batch (created and
// final) are published; false while the batch is not final.
func (s *Store) BatchEventsOut(ctx context.Context, id string) (bool, error) {
	v, err := s.client.HMGet(ctx, s.keys.batch(id), "evt_created", "evt_final").Result()
	if err != nil {
		return false, opErr("batch events", id, err)
	}
	return v[0] != "pending" && v[1] == "done", nil
}

// EndStranded ends an in-flight request whose lease ended at or before
// leaseBefore and that nobody will bring back (its message is gone, or its
// batch is past its deadline or cancelled): state to (expired, failed or
// canceled) with f, the
// fence moved so a holder coming back writes nothing. Applied is false when
// the record moved on meanwhile (ended, or a live lease again); a record
// gone by retention fails with ErrNotFound and leaves the lease index.
func (s *Store) EndStranded(ctx context.Context, ref lifecycle.Ref, leaseBefore time.Time, to lifecycle.State, f *lifecycle.Failure) (Transition, error) {
	if err := checkRef(ref); err != nil {
		return Transition{}, fmt.Errorf("state: end stranded: %w", err)
	}
	if (to != lifecycle.StateExpired && to != lifecycle.StateFailed && to != lifecycle.StateCanceled) || f == nil {
		return Transition{}, fmt.Errorf("state: end stranded %s: %w", ref.ID, ErrInvalidOutcome)
	}
	rep, err := s.run(ctx, scriptEndStranded, s.keys.requestKeys(ref),
		s.nowMS(), ref.ID, toMS(leaseBefore), string(to), string(f.Code), f.Message, s.retentionMS())
	if err != nil {
		return Transition{}, fmt.Errorf("state: end stranded %s: %w", ref.ID, err)
	}
	return s.transitionOf("end stranded", ref, rep)
}

// StrandedEntry is an in-flight request whose lease has ended. Defined in
// pkg/lifecycle so the engine needs no Redis client.
type StrandedEntry = lifecycle.Stranded

// Stranded lists up to limit in-flight requests of a batch whose lease
// ended at or before before, oldest first (ExpiredLeases), with the stream
// sequence each was last claimed from.
func (s *Store) Stranded(ctx context.Context, batchID string, before time.Time, limit int64) ([]StrandedEntry, error) {
	leases, err := s.ExpiredLeases(ctx, batchID, before, limit)
	if err != nil || len(leases) == 0 {
		return nil, err
	}
	pipe := s.client.Pipeline()
	cmds := make([]*redis.StringCmd, len(leases))
	for i, l := range leases {
		cmds[i] = pipe.HGet(ctx, s.keys.request(l.Ref), "seq")
	}
	_, _ = pipe.Exec(ctx) // read per command; a missing field is 0
	out := make([]StrandedEntry, len(leases))
	for i, l := range leases {
		seq, _ := strconv.ParseUint(cmds[i].Val(), 10, 64)
		out[i] = StrandedEntry{Ref: l.Ref, LeaseExpires: l.Expires, Seq: seq}
	}
	return out, nil
}

// listChunk is how many index entries ListBatches reads per round trip
// while it filters.
const listChunk = 100

// listScanMax bounds the index entries one ListBatches call reads while
// filtering; a page that stops there says HasMore, and the next page goes
// on from its last batch.
const listScanMax = 20 * listChunk

// ListBatches returns a page of batches, newest first, after q.After,
// filtered by status and metadata. Ids in the index whose batch is gone
// (retention) are dropped from it on the way. An After that names no
// listed batch fails with ErrNotFound.
func (s *Store) ListBatches(ctx context.Context, q lifecycle.BatchQuery) (lifecycle.BatchPage, error) {
	limit := q.Limit
	if limit <= 0 {
		limit = lifecycle.DefaultBatchPage
	}
	limit = min(limit, lifecycle.MaxBatchPage)
	idx := s.keys.batchesCreated()
	var start int64
	if q.After != "" {
		rank, err := s.client.ZRevRank(ctx, idx, q.After).Result()
		if err != nil {
			return lifecycle.BatchPage{}, fmt.Errorf("state: list batches after %s: %w", q.After, interpret(err))
		}
		start = rank + 1
	}
	var page lifecycle.BatchPage
	for scanned := int64(0); scanned < listScanMax; {
		ids, err := s.client.ZRevRange(ctx, idx, start, start+listChunk-1).Result()
		if err != nil {
			return lifecycle.BatchPage{}, opErr("list batches", "", err)
		}
		if len(ids) == 0 {
			return page, nil
		}
		pipe := s.client.Pipeline()
		cmds := make([]*redis.MapStringStringCmd, len(ids))
		for i, id := range ids {
			cmds[i] = pipe.HGetAll(ctx, s.keys.batch(id))
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return lifecycle.BatchPage{}, opErr("list batches", "", err)
		}
		var gone []any
		for i, cmd := range cmds {
			m := cmd.Val()
			if m["total"] == "" {
				gone = append(gone, ids[i])
				continue
			}
			if len(page.Batches) == limit {
				page.HasMore = true
				break
			}
			if b := decodeBatch(m); matches(b, q) {
				page.Batches = append(page.Batches, b)
			}
		}
		if len(gone) > 0 {
			_ = s.client.ZRem(ctx, idx, gone...).Err() // best effort; the next list retries
			start -= int64(len(gone))
		}
		if page.HasMore {
			return page, nil
		}
		start += int64(len(ids))
		scanned += int64(len(ids))
	}
	page.HasMore = true
	return page, nil
}

// matches reports whether b passes q's filters.
func matches(b lifecycle.Batch, q lifecycle.BatchQuery) bool {
	if q.Status != "" && b.Status != q.Status {
		return false
	}
	for k, v := range q.Metadata {
		if got, ok := b.Metadata[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// TrimBatchIndex drops from the list index the batches created before any
// batch still kept could have been: every batch key is gone by its
// created_at plus the longest completion window plus retention. It
// returns how many entries it dropped.
func (s *Store) TrimBatchIndex(ctx context.Context) (int64, error) {
	cutoff := s.nowMS() - (lifecycle.MaxCompletionWindow + s.cfg.Retention).Milliseconds()
	n, err := s.client.ZRemRangeByScore(ctx, s.keys.batchesCreated(), "-inf", "("+strconv.FormatInt(cutoff, 10)).Result()
	if err != nil {
		return 0, opErr("trim batch index", "", err)
	}
	return n, nil
}
