// Package invariant checks, after a run, what salvo promises of every
// request and batch, from the stored truth and without trusting what it
// checks:
//
//   - every request has exactly one terminal record in Redis and exactly one
//     result message on the RESULTS stream — read raw, every stored message
//     counted, so a repeat JetStream's dedup window no longer caught counts;
//     the one exception is escalation's (docs/PROTOCOL.md section 12): a
//     published failure and the racing copy's completed line after it;
//   - the last result line of a request states what its record says;
//   - every batch ended, its counters equal a recount of its records, no
//     request of an ended batch is left non-terminal, every result counted
//     published, and its event stream holds one created and one terminal
//     event that agrees with the batch;
//   - upstream calls per request, from the mock upstream's log: a completed
//     request was answered at least once, and answers beyond the first are
//     reported as duplicate calls (work paid for twice, expected only
//     around crashes).
//
// The chaos suite (bench/chaos) runs it after each scenario; its tests
// plant each kind of fault and watch it fail.
package invariant

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"

	"github.com/salvo-run/salvo/internal/mockupstream"
	"github.com/salvo-run/salvo/pkg/lifecycle"
	"github.com/salvo-run/salvo/pkg/state"
)

// Request is one request a run published and expects to end.
type Request struct {
	ID      string
	BatchID string
}

// Calls is what the upstream saw of one request id: the calls it received
// and how many it answered 200.
type Calls struct {
	Calls int
	OK    int
}

// Input is what Check reads.
type Input struct {
	NATS  *nats.Conn
	Redis redis.UniversalClient
	// Prefix is the deployment's prefix; default lifecycle.PrefixDefault.
	Prefix string
	// Requests are every request the run published.
	Requests []Request
	// Batches are the batches the run created; each must have ended.
	Batches []string
	// Calls is the upstream's log per request id (FetchCalls); nil skips
	// the call checks.
	Calls map[string]Calls
}

// Report is what Check found. The counts are of requests (or batches)
// with the fault, not of messages; Violations names each one (at most
// sampleMax per kind, the counts are complete).
type Report struct {
	Requests int `json:"requests"`
	Batches  int `json:"batches"`
	// ResultMessages is every message stored on the results subjects for
	// the run's requests, repeats included.
	ResultMessages int `json:"result_messages"`
	// Foreign counts result messages of ids the run did not publish (not
	// a violation: a scenario may publish what it does not track).
	Foreign int `json:"foreign_results"`
	// States counts the requests by recorded state.
	States map[lifecycle.State]int `json:"states"`

	// Lost: no record, or no result message.
	Lost int `json:"lost"`
	// Doubled: more result messages than the request may have.
	Doubled int `json:"doubled"`
	// Mismatched: the last result line states another state than the
	// record.
	Mismatched int `json:"mismatched"`
	// Stranded: a record not terminal.
	Stranded int `json:"stranded"`
	// CounterSkews: batches whose counters differ from a recount.
	CounterSkews int `json:"counter_skews"`
	// Unended: batches missing or not final.
	Unended int `json:"unended"`
	// PublishSkews: ended batches whose published count is not the total,
	// or that report results missing.
	PublishSkews int `json:"publish_skews"`
	// EventSkews: batches whose events are not one created and one
	// terminal event agreeing with the batch.
	EventSkews int `json:"event_skews"`
	// Unanswered: completed requests the upstream never answered 200.
	Unanswered int `json:"unanswered"`

	// UpstreamCalls is every call the upstream saw for the run's requests
	// (their racing copies included).
	UpstreamCalls int `json:"upstream_calls"`
	// DuplicateCalls counts 200 answers beyond the first per request id
	// (a racing copy is an id of its own): the same work paid for twice.
	DuplicateCalls int `json:"duplicate_calls"`

	Violations []string `json:"violations,omitempty"`
	perKind    map[string]int
}

// sampleMax bounds the violations listed per kind.
const sampleMax = 20

// Err is nil when the run kept every promise, else an error listing what
// it broke.
func (r *Report) Err() error {
	if len(r.Violations) == 0 {
		return nil
	}
	return fmt.Errorf("invariant: %s:\n  %s", r.Summary(), strings.Join(r.Violations, "\n  "))
}

// Summary is the figures on one line.
func (r *Report) Summary() string {
	return fmt.Sprintf("%d requests in %d batches: lost %d, doubled %d, mismatched %d, stranded %d, "+
		"counter skews %d, unended %d, publish skews %d, event skews %d, unanswered %d; "+
		"%d result messages, %d upstream calls, %d duplicate calls",
		r.Requests, r.Batches, r.Lost, r.Doubled, r.Mismatched, r.Stranded,
		r.CounterSkews, r.Unended, r.PublishSkews, r.EventSkews, r.Unanswered,
		r.ResultMessages, r.UpstreamCalls, r.DuplicateCalls)
}

func (r *Report) violate(kind, format string, args ...any) {
	if r.perKind == nil {
		r.perKind = map[string]int{}
	}
	r.perKind[kind]++
	if r.perKind[kind] <= sampleMax {
		r.Violations = append(r.Violations, kind+": "+fmt.Sprintf(format, args...))
	}
}

// FetchCalls reads the call log of the mock upstream serving at baseURL.
func FetchCalls(ctx context.Context, baseURL string) (map[string]Calls, error) {
	log, err := mockupstream.FetchCallLog(ctx, baseURL)
	if err != nil {
		return nil, err
	}
	out := make(map[string]Calls, len(log))
	for id, c := range log {
		out[id] = Calls{Calls: c.Calls, OK: c.Answered}
	}
	return out, nil
}

// line is what the checker reads of a result message.
type line struct {
	ID           string          `json:"id"`
	State        lifecycle.State `json:"state"`
	EscalationID string          `json:"escalation_id"`
}

// stored is what the RESULTS stream holds for the run.
type stored struct {
	lines  map[string][]line                 // per request id, in stream order
	events map[string][]lifecycle.BatchEvent // per batch id, in stream order
	total  int                               // result messages read
}

// Check reads Redis and the RESULTS stream and reports every broken
// promise. It returns an error only when it cannot read them.
func Check(ctx context.Context, in Input) (*Report, error) {
	if in.Prefix == "" {
		in.Prefix = lifecycle.PrefixDefault
	}
	store, err := state.New(in.Redis, state.Config{Prefix: in.Prefix})
	if err != nil {
		return nil, fmt.Errorf("invariant: %w", err)
	}
	st, err := readStream(ctx, in.NATS, in.Prefix)
	if err != nil {
		return nil, err
	}
	r := &Report{Requests: len(in.Requests), Batches: len(in.Batches), States: map[lifecycle.State]int{}}

	records := make(map[lifecycle.Ref]lifecycle.State, len(in.Requests))
	known := make(map[string]bool, len(in.Requests))
	for _, q := range in.Requests {
		known[q.ID] = true
		ref := lifecycle.Ref{ID: q.ID, BatchID: q.BatchID}
		rec, err := store.Request(ctx, ref)
		switch {
		case errors.Is(err, state.ErrNotFound):
			// Its lines and calls are still counted: a request whose
			// record is gone can still have been published twice.
			r.violate("lost", "%s: no record in Redis", q.ID)
			r.Lost++
			r.checkLines(q, "", st.lines[q.ID])
			r.countCalls(q, "", in.Calls)
			continue
		case err != nil:
			return nil, fmt.Errorf("invariant: %w", err)
		}
		records[ref] = rec.State
		r.States[rec.State]++
		if !rec.State.Terminal() {
			r.violate("stranded", "%s: recorded %s", q.ID, rec.State)
			r.Stranded++
		}
		r.checkLines(q, rec.State, st.lines[q.ID])
		r.countCalls(q, rec.State, in.Calls)
	}
	for id, ls := range st.lines {
		switch {
		case known[id]:
			r.ResultMessages += len(ls)
		case strings.HasSuffix(id, lifecycle.CopySuffix) && known[strings.TrimSuffix(id, lifecycle.CopySuffix)]:
			// A racing copy publishes its original's line, never one of
			// its own.
			r.violate("doubled", "%s: a racing copy published a line under its own id", id)
			r.Doubled++
		default:
			r.Foreign += len(ls)
		}
	}

	perBatch := map[string][]Request{}
	for _, q := range in.Requests {
		perBatch[q.BatchID] = append(perBatch[q.BatchID], q)
	}
	for _, id := range in.Batches {
		b, err := store.Batch(ctx, id)
		switch {
		case errors.Is(err, state.ErrNotFound):
			r.violate("unended", "batch %s: no batch in Redis", id)
			r.Unended++
			continue
		case err != nil:
			return nil, fmt.Errorf("invariant: %w", err)
		}
		r.checkBatch(b, perBatch[id], records, st.events[id])
	}
	return r, nil
}

// checkLines checks one request's result lines against its recorded
// state ("" when the record is gone: only the count is checked). A request
// has one line of its own stating its recorded state, with one exception
// (docs/PROTOCOL.md section 12): an original its racing copy beat is
// recorded superseded and has the copy's completed line (escalation_id
// set), after its own failed line if that was published first.
func (r *Report) checkLines(q Request, recorded lifecycle.State, ls []line) {
	var own, fromCopy []int // indexes into ls, in stream order
	for i, l := range ls {
		if l.EscalationID != "" {
			fromCopy = append(fromCopy, i)
		} else {
			own = append(own, i)
		}
	}
	switch {
	case len(own) > 1 || len(fromCopy) > 1:
		r.violate("doubled", "%s: %d result messages (%s)", q.ID, len(ls), statesOf(ls))
		r.Doubled++
	case recorded == "":
		// The record is gone: nothing to compare the line with.
	case len(ls) == 0:
		if recorded.Terminal() {
			r.violate("lost", "%s: recorded %s, no result message", q.ID, recorded)
			r.Lost++
		}
	case recorded == lifecycle.StateSuperseded:
		switch {
		case len(fromCopy) == 0:
			r.violate("mismatched", "%s: recorded superseded, no line from its racing copy (%s)", q.ID, statesOf(ls))
			r.Mismatched++
		case ls[fromCopy[0]].State != lifecycle.StateCompleted:
			r.violate("mismatched", "%s: recorded superseded, its copy's line says %s", q.ID, ls[fromCopy[0]].State)
			r.Mismatched++
		case len(own) == 1 && (ls[own[0]].State != lifecycle.StateFailed || own[0] > fromCopy[0]):
			// Only a published failure may precede the copy's line.
			r.violate("doubled", "%s: its own line and its copy's line, not a failure overturned (%s)", q.ID, statesOf(ls))
			r.Doubled++
		}
	case len(fromCopy) > 0:
		r.violate("doubled", "%s: recorded %s, with a line from a racing copy (%s)", q.ID, recorded, statesOf(ls))
		r.Doubled++
	case recorded.Terminal() && ls[own[0]].State != recorded:
		r.violate("mismatched", "%s: recorded %s, result line says %s", q.ID, recorded, ls[own[0]].State)
		r.Mismatched++
	}
}

// countCalls adds the upstream's calls for a request and its racing copy,
// and checks that a completed request was answered ("" when the record is
// gone: counted only).
func (r *Report) countCalls(q Request, recorded lifecycle.State, calls map[string]Calls) {
	if calls == nil {
		return
	}
	own, cp := calls[q.ID], calls[q.ID+lifecycle.CopySuffix]
	r.UpstreamCalls += own.Calls + cp.Calls
	r.DuplicateCalls += max(own.OK-1, 0) + max(cp.OK-1, 0)
	if (recorded == lifecycle.StateCompleted || recorded == lifecycle.StateSuperseded) && own.OK+cp.OK == 0 {
		r.violate("unanswered", "%s: recorded %s, the upstream never answered it 200 (%d calls)", q.ID, recorded, own.Calls+cp.Calls)
		r.Unanswered++
	}
}

// checkBatch checks one batch against a recount of its records and its
// events.
func (r *Report) checkBatch(b lifecycle.Batch, reqs []Request, records map[lifecycle.Ref]lifecycle.State, evs []lifecycle.BatchEvent) {
	if !b.Status.Terminal() {
		r.violate("unended", "batch %s: status %s, counters %+v", b.ID, b.Status, b.Counts)
		r.Unended++
	}
	recount := lifecycle.Counts{Total: int64(len(reqs))}
	for _, q := range reqs {
		s, ok := records[lifecycle.Ref{ID: q.ID, BatchID: q.BatchID}]
		if !ok {
			s = lifecycle.StatePending
		}
		recount.Count(s)
	}
	if b.Counts != recount {
		r.violate("counter skew", "batch %s: counters %+v, recount %+v", b.ID, b.Counts, recount)
		r.CounterSkews++
	}
	if b.Status.Terminal() && (b.ResultsPublished != b.Counts.Total || b.ResultsMissing != 0) {
		r.violate("publish skew", "batch %s: %d of %d results counted published, %d missing",
			b.ID, b.ResultsPublished, b.Counts.Total, b.ResultsMissing)
		r.PublishSkews++
	}
	r.checkEvents(b, evs)
}

// checkEvents: one created event, and for an ended batch one terminal
// event naming its status with its final counters.
func (r *Report) checkEvents(b lifecycle.Batch, evs []lifecycle.BatchEvent) {
	var created int
	var terminal []lifecycle.BatchEvent
	for _, ev := range evs {
		if ev.Type == lifecycle.EventCreated {
			created++
		} else {
			terminal = append(terminal, ev)
		}
	}
	wantTerminal := 0
	if b.Status.Terminal() {
		wantTerminal = 1
	}
	switch {
	case created != 1 || len(terminal) != wantTerminal:
		r.violate("event skew", "batch %s (%s): %d created and %d terminal events", b.ID, b.Status, created, len(terminal))
		r.EventSkews++
	case wantTerminal == 1 && (lifecycle.BatchStatus(terminal[0].Type) != b.Status || terminal[0].Batch.Counts != b.Counts):
		r.violate("event skew", "batch %s: terminal event %s with counters %+v, batch %s with %+v",
			b.ID, terminal[0].Type, terminal[0].Batch.Counts, b.Status, b.Counts)
		r.EventSkews++
	}
}

func statesOf(ls []line) string {
	s := make([]string, len(ls))
	for i, l := range ls {
		s[i] = string(l.State)
		if l.EscalationID != "" {
			s[i] += " from " + l.EscalationID
		}
	}
	return strings.Join(s, ", ")
}

// readTimeout bounds one pull of the raw read.
const readTimeout = 10 * time.Second

// readStream reads every message stored on the results and batch event
// subjects, with an ordered consumer from the first sequence: no dedup
// stands between a message and its count.
func readStream(ctx context.Context, nc *nats.Conn, prefix string) (*stored, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("invariant: %w", err)
	}
	streamName := strings.ToUpper(prefix) + "_RESULTS"
	resPrefix, evtPrefix := prefix+".res.", prefix+".evt.batch."
	cons, err := js.OrderedConsumer(ctx, streamName, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{resPrefix + ">", evtPrefix + ">"},
		DeliverPolicy:  jetstream.DeliverAllPolicy,
	})
	if err != nil {
		return nil, fmt.Errorf("invariant: read %s: %w", streamName, err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("invariant: read %s: %w", streamName, err)
	}
	st := &stored{lines: map[string][]line{}, events: map[string][]lifecycle.BatchEvent{}}
	for pending := info.NumPending; pending > 0; {
		batch, err := cons.Fetch(int(min(pending, 512)), jetstream.FetchMaxWait(readTimeout))
		if err != nil {
			return nil, fmt.Errorf("invariant: read %s: %w", streamName, err)
		}
		got := 0
		for msg := range batch.Messages() {
			got++
			if err := st.add(msg, resPrefix); err != nil {
				return nil, fmt.Errorf("invariant: read %s: %w", streamName, err)
			}
			if meta, err := msg.Metadata(); err == nil {
				pending = meta.NumPending
			}
		}
		if err := batch.Error(); err != nil {
			return nil, fmt.Errorf("invariant: read %s: %w", streamName, err)
		}
		if got == 0 {
			return nil, fmt.Errorf("invariant: read %s: %d messages pending, none delivered", streamName, pending)
		}
	}
	return st, nil
}

// add counts one stored message.
func (st *stored) add(msg jetstream.Msg, resPrefix string) error {
	if strings.HasPrefix(msg.Subject(), resPrefix) {
		var l line
		if err := json.Unmarshal(msg.Data(), &l); err != nil || l.ID == "" {
			return fmt.Errorf("result message on %s is not a result line: %.200q", msg.Subject(), msg.Data())
		}
		st.lines[l.ID] = append(st.lines[l.ID], l)
		st.total++
		return nil
	}
	var ev lifecycle.BatchEvent
	if err := json.Unmarshal(msg.Data(), &ev); err != nil || ev.Batch.ID == "" {
		return fmt.Errorf("batch event on %s is not a batch event: %.200q", msg.Subject(), msg.Data())
	}
	st.events[ev.Batch.ID] = append(st.events[ev.Batch.ID], ev)
	return nil
}
