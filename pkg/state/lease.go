package state

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/salvo-run/salvo/pkg/lifecycle"
)

// Refresh extends the leases of held requests by LeaseTTL in one pipeline.
// The i-th error is nil on success, wraps ErrLeaseLost when the record's
// state, owner or token no longer match, or ErrUnavailable.
func (s *Store) Refresh(ctx context.Context, hs []lifecycle.Held) []error {
	errs := make([]error, len(hs))
	if len(hs) == 0 {
		return errs
	}
	now, ttl := s.nowMS(), s.cfg.LeaseTTL.Milliseconds()
	calls := make([]scriptCall, len(hs))
	for i, h := range hs {
		calls[i] = scriptCall{
			script: scriptRefresh,
			keys:   s.keys.requestKeys(h.Ref),
			args:   []any{now, h.Lease.Owner, h.Lease.Token, ttl, h.Ref.ID},
		}
	}
	// No WAIT: a refresh lost in a failover shortens the lease on the
	// promoted replica, which costs at most a repeated upstream call (the
	// fencing token still refuses the old holder's terminal write); a
	// heartbeat held up by replication would risk the lease itself.
	for i, cmd := range runPipelined(ctx, s.client, replicaWait{}, calls) {
		v, err := cmd.Result()
		if err != nil {
			errs[i] = fmt.Errorf("state: refresh %s: %w", hs[i].Ref.ID, interpret(err))
			continue
		}
		rep, err := asReply(v)
		if err != nil {
			errs[i] = err
			continue
		}
		if rep.code() != "ok" {
			errs[i] = fmt.Errorf("state: refresh %s (record %q): %w", hs[i].Ref.ID, rep.str(1), ErrLeaseLost)
		}
	}
	return errs
}

// MarkPublished records that the requests' results are published: the
// outbox is dropped, published set and the result counted in its batch,
// in one pipeline. Records already gone (retention) are skipped. It
// returns the batches that turned final because these were the last
// results they waited for (their final event is due), and the first error.
func (s *Store) MarkPublished(ctx context.Context, refs []lifecycle.Ref) ([]lifecycle.Batch, error) {
	if len(refs) == 0 {
		return nil, nil
	}
	now, retention := s.nowMS(), s.retentionMS()
	calls := make([]scriptCall, len(refs))
	for i, ref := range refs {
		keys, _ := s.keys.pairKeys(ref)
		calls[i] = scriptCall{
			script: scriptMarkPublished,
			keys:   keys,
			args:   []any{now, retention, ref.ID},
		}
	}
	var final []lifecycle.Batch
	var first error
	for i, cmd := range runPipelined(ctx, s.client, s.wait, calls) {
		v, err := cmd.Result()
		if err == nil {
			var rep reply
			if rep, err = asReply(v); err == nil {
				if m := rep.hash(1); m != nil {
					final = append(final, decodeBatch(m))
				}
				continue
			}
		}
		if first == nil {
			first = fmt.Errorf("state: mark published %s: %w", refs[i].ID, interpret(err))
		}
	}
	return final, first
}

// LeaseEntry is one in-flight request of a batch's lease index.
type LeaseEntry struct {
	Ref     lifecycle.Ref
	Expires time.Time
}

// ExpiredLeases lists up to limit in-flight requests of a batch whose lease
// ended at or before before, oldest first, from the lease index the scripts
// maintain (claim adds, refresh and start move, every move out of flight
// removes). A reaper uses it to find requests whose message was purged, so
// no redelivery will ever reclaim them.
func (s *Store) ExpiredLeases(ctx context.Context, batchID string, before time.Time, limit int64) ([]LeaseEntry, error) {
	zs, err := s.client.ZRangeByScoreWithScores(ctx, s.keys.leases(batchID), &redis.ZRangeBy{
		Min: "-inf", Max: strconv.FormatInt(toMS(before), 10), Count: limit,
	}).Result()
	if err != nil {
		return nil, opErr("expired leases", batchID, err)
	}
	out := make([]LeaseEntry, 0, len(zs))
	for _, z := range zs {
		id, _ := z.Member.(string)
		out = append(out, LeaseEntry{Ref: lifecycle.Ref{ID: id, BatchID: batchID}, Expires: msTime(int64(z.Score))})
	}
	return out, nil
}
