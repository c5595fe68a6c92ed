package main

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/salvo-run/salvo/internal/invariant"
	"github.com/salvo-run/salvo/pkg/api"
	"github.com/salvo-run/salvo/pkg/client"
)

type invariantReport = invariant.Report

// expectVolatileLoss judges a Redis restart without persistence. Redis is
// salvo's source of truth, so the restart loses all of it: every record,
// the batch and its counters. What must hold: the loss is reported, never
// silent — the batch API answers not_found for the batch, and every
// request still gets exactly one result message (those that ended before
// the restart their real one; the others failed, batch_not_found, after
// batches.unknown_hold) — and no request is run to a second result.
func expectVolatileLoss(r *run, rep *invariant.Report) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var problems []string
	for _, id := range r.batches {
		_, err := r.e.api.Batch(ctx, id)
		if !client.IsCode(err, api.CodeNotFound) {
			problems = append(problems, fmt.Sprintf("batch %s: the API answers %v, not not_found: the loss is not reported", id, err))
		}
	}
	restart := r.faults[0].At
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
		if o.At.Before(restart) {
			before++
			key += " (before the restart)"
		}
		byOutcome[key]++
	}
	if silent > 0 {
		problems = append(problems, fmt.Sprintf("%d requests have no result: lost silently", silent))
	}
	if rep.Doubled > 0 {
		problems = append(problems, fmt.Sprintf("%d requests have more than one result message", rep.Doubled))
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
	r.note("Redis lost everything at the restart (%d of %d requests had ended before it): first results %s",
		before, len(r.reqs), strings.Join(parts, ", "))
	r.note("the batch API answers not_found for the batch; the checker reports %d violations (listed)", len(rep.Violations))
	if len(problems) > 0 {
		return fmt.Errorf("%s", strings.Join(problems, "; "))
	}
	return nil
}

// expectFailoverLoss judges a Sentinel failover. Replication is
// asynchronous: writes the primary acknowledged but had not sent to the
// replica die with it. A request whose terminal write is lost is, on the
// promoted replica, still in flight (its lease soon ends, its message was
// acked) or still pending (its claim was lost too): the sweep ends the
// first kind failed message_lost after batches.stranded_after, publishing
// a second result line, and the second kind when the batch expires. What
// must hold: nothing is lost without a trace — every request has a result
// message — and every request that ended twice is reported (doubled, or
// mismatched when the stream's duplicate window swallowed the second
// line); the figures give the counts and the replication gap.
func expectFailoverLoss(r *run, rep *invariant.Report) error {
	silent := 0
	for _, q := range r.reqs {
		if len(r.e.res.outcomes(q.ID)) == 0 {
			silent++
		}
	}
	r.note("after the failover: %d requests with two result messages (doubled), %d whose last line disagrees with the record (mismatched), %d lost, %d stranded, %d counter skews; first results %v",
		rep.Doubled, rep.Mismatched, rep.Lost, rep.Stranded, rep.CounterSkews, r.outcomeCounts())
	if silent > 0 {
		return fmt.Errorf("%d requests have no result at all", silent)
	}
	return nil
}
