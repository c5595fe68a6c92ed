package main

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/salvo-run/salvo/internal/invariant"
	"github.com/salvo-run/salvo/pkg/api"
	"github.com/salvo-run/salvo/pkg/client"
	"github.com/salvo-run/salvo/pkg/lifecycle"
	"github.com/salvo-run/salvo/pkg/state"
)

type invariantReport = invariant.Report

// expectVolatileLoss judges a Redis restart without persistence. Redis is
// salvo's source of truth, so the restart loses all of it: every record,
// the batch and its counters. What must hold: the loss is reported, never
// silent — the batch API answers not_found for the batch, and every
// request still gets exactly one result message (those that ended before
// the restart their real one; the others failed, batch_not_found, after
// batches.unknown_hold) — no request is run to a second result, none is
// left unended or disagrees with its record, and the lost records are at
// most those of the requests ended before the restart plus those started
// and unanswered at it.
func expectVolatileLoss(r *run, rep *invariant.Report) error {
	if len(r.faults) == 0 {
		return errors.New("no Redis restart was injected: nothing was lost to judge")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var problems []string
	for _, id := range r.batches {
		_, err := r.e.api.Batch(ctx, id)
		if !client.IsCode(err, api.CodeNotFound) {
			problems = append(problems, fmt.Sprintf("batch %s: the API answers %v, not not_found: the loss is not reported", id, err))
		}
	}
	restart := r.faults[0]
	byOutcome := map[string]int{}
	before, silent := 0, 0
	for _, q := range r.reqs {
		os := r.e.res.outcomes(q.ID)
		if len(os) == 0 {
			silent++
			continue
		}
		o := os[0]
		key := o.State
		if o.Code != "" {
			key += " " + o.Code
		}
		if o.At.Before(restart.At) {
			before++
			key += " (before the restart)"
		}
		byOutcome[key]++
	}
	cut := len(restart.pending)
	if silent > 0 {
		problems = append(problems, fmt.Sprintf("%d requests have no result: lost silently", silent))
	}
	for _, c := range []struct {
		n    int
		what string
	}{
		{rep.Doubled, "requests have more than one result message"},
		{rep.Mismatched, "requests have a last result line the record contradicts"},
		{rep.Stranded, "requests are recorded non-terminal"},
		{rep.CounterSkews + rep.PublishSkews + rep.EventSkews, "batch counter, publish or event skews"},
		{rep.Unanswered, "completed requests the upstream never answered"},
	} {
		if c.n > 0 {
			problems = append(problems, fmt.Sprintf("%d %s", c.n, c.what))
		}
	}
	if rep.Lost > before+cut {
		problems = append(problems, fmt.Sprintf("%d requests lost, more than the %d ended before the restart and the %d started and unanswered at it",
			rep.Lost, before, cut))
	}
	if rep.Unended > len(r.batches) {
		problems = append(problems, fmt.Sprintf("%d batches unended, more than the run's %d", rep.Unended, len(r.batches)))
	}
	keys := make([]string, 0, len(byOutcome))
	for k := range byOutcome {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%d %s", byOutcome[k], k)
	}
	r.note("Redis lost everything at the restart (%d of %d requests had ended before it, %d were started and unanswered at it): first results %s",
		before, len(r.reqs), cut, strings.Join(parts, ", "))
	r.note("the batch API answers not_found for the batch; the checker: %s", rep.Summary())
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	return nil
}

// lossSlack widens the lagging failover's loss window on each side: a
// write is acknowledged a moment before its result line goes out, and the
// replication proxy's delay is not exact.
const lossSlack = 500 * time.Millisecond

// expectFailoverLoss judges a Sentinel failover. With the replica in sync
// (no lag) nothing may be lost: the report must be clean, as in every
// other scenario. With a lagging replica, writes the primary acknowledged
// but had not sent to the replica die with it. A request whose terminal
// write is lost is, on the promoted replica, still in flight (its lease
// soon ends, its message was acked) or still pending (its claim was lost
// too): the sweep ends the first kind failed message_lost after
// batches.stranded_after, publishing a second result line, and the second
// kind when the batch expires. What must hold then: every request has a
// result message, none is left non-terminal, and every request that
// breaks a promise (no record, two differing results, a record that
// contradicts its line) had its first result in the loss window — from
// the lag (plus lossSlack) before the kill to lossSlack after it.
func expectFailoverLoss(r *run, rep *invariant.Report) error {
	r.note("after the failover: %d requests with two result messages (doubled), %d whose last line disagrees with the record (mismatched), %d lost, %d stranded, %d counter skews; first results %v",
		rep.Doubled, rep.Mismatched, rep.Lost, rep.Stranded, rep.CounterSkews, r.outcomeCounts())
	lag := r.e.prof.replicaLag
	if lag == 0 {
		if err := rep.Err(); err != nil {
			return fmt.Errorf("the replica was in sync, nothing may be lost: %w", err)
		}
		return nil
	}
	if r.failoverAt.IsZero() {
		return errors.New("the primary was never killed: nothing was lost to judge")
	}
	from, to := r.failoverAt.Add(-lag-lossSlack), r.failoverAt.Add(lossSlack)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	store, err := state.New(r.e.rdb, state.Config{Prefix: prefix})
	if err != nil {
		return err
	}
	var problems, outside []string
	silent, exposed, broken := 0, 0, 0
	for _, q := range r.reqs {
		os := r.e.res.outcomes(q.ID)
		if len(os) == 0 {
			silent++
			continue
		}
		first := os[0].At
		inWindow := !first.Before(from) && !first.After(to)
		if inWindow {
			exposed++
		}
		rec, err := store.Request(ctx, lifecycle.Ref{ID: q.ID, BatchID: q.BatchID})
		missing := errors.Is(err, state.ErrNotFound)
		if err != nil && !missing {
			return fmt.Errorf("read the record of %s: %w", q.ID, err)
		}
		differ := false
		for _, o := range os[1:] {
			differ = differ || o.State != os[0].State
		}
		if !missing && string(rec.State) != os[len(os)-1].State {
			differ = true
		}
		if !missing && !differ {
			continue
		}
		broken++
		if !inWindow {
			outside = append(outside, fmt.Sprintf("%s (first result %s after the kill, record found %t, %d lines)",
				q.ID, first.Sub(r.failoverAt).Round(time.Millisecond), !missing, len(os)))
		}
	}
	r.note("loss window %s before the kill to %s after it: %d requests had their first result in it, %d of them broke a promise",
		(lag + lossSlack), lossSlack, exposed, broken-len(outside))
	if silent > 0 {
		problems = append(problems, fmt.Sprintf("%d requests have no result at all", silent))
	}
	if len(outside) > 0 {
		problems = append(problems, fmt.Sprintf("%d requests broke a promise with their first result outside the loss window: %s",
			len(outside), joinLines(outside, 5)))
	}
	if rep.Stranded > 0 || rep.Unended > 0 || rep.Unanswered > 0 {
		problems = append(problems, fmt.Sprintf("%d stranded, %d unended batches, %d completed never answered: the failover loses writes, it may not leave work unended",
			rep.Stranded, rep.Unended, rep.Unanswered))
	}
	if rep.Lost > exposed || rep.Doubled+rep.Mismatched > exposed {
		problems = append(problems, fmt.Sprintf("the checker counts %d lost and %d doubled or mismatched, more than the %d requests whose first result fell in the loss window",
			rep.Lost, rep.Doubled+rep.Mismatched, exposed))
	}
	if broken == 0 && rep.CounterSkews+rep.PublishSkews+rep.EventSkews > 0 {
		problems = append(problems, fmt.Sprintf("batch skews without a lost write to explain them: %s", rep.Summary()))
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	return nil
}
