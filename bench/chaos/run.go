package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/salvo-run/salvo/internal/invariant"
	"github.com/salvo-run/salvo/internal/mockupstream"
	"github.com/salvo-run/salvo/pkg/api"
	"github.com/salvo-run/salvo/pkg/client"
	"github.com/salvo-run/salvo/pkg/lifecycle"
)

// size is the scale of a run: the full `make chaos` or the short CI run.
type size struct {
	name        string
	n           int           // requests of a scenario's main batch
	concurrency int           // per worker process
	latency     time.Duration // upstream latency, minimum (the maximum is twice it)
	kills       int           // worker kills of the kill scenario
	timeout     time.Duration // one scenario, start to checked
}

var sizes = map[string]size{
	"full":  {name: "full", n: 3000, concurrency: 8, latency: 150 * time.Millisecond, kills: 8, timeout: 3 * time.Minute},
	"short": {name: "short", n: 200, concurrency: 3, latency: 150 * time.Millisecond, kills: 3, timeout: 90 * time.Second},
}

// scenario is one fault schedule against fresh servers.
type scenario struct {
	name  string
	title string
	// profile builds the servers' shape for a size.
	profile func(sz size) profile
	// setup creates the batches and publishes the requests (default: one
	// batch of sz.n requests of model).
	setup func(ctx context.Context, r *run) error
	// inject runs the faults while the batches run; it returns when its
	// faults are done (bounded in count and time).
	inject func(ctx context.Context, r *run) error
	// verify adds the scenario's own checks after the invariant check
	// (nil: none).
	verify func(ctx context.Context, r *run) error
	// batchMayVanish: the scenario wipes Redis, so the batch API may stop
	// knowing a batch (see allEnded).
	batchMayVanish bool
	// expect judges the invariant report when the scenario loses state on
	// purpose (nil: the report must be clean).
	expect func(r *run, rep *invariant.Report) error
	// minFaults is how many faults of each kind (the start of the fault's
	// kind) the scenario must have injected, or it did not test what it
	// claims (nil: at least one fault of any kind when it injects any).
	minFaults func(sz size) map[string]int
}

// fault is one injected fault: when it began, when it was undone (equal
// for an instant fault such as a SIGKILL), the upstream calls in flight
// when it hit and the calls it may run a second time (its share of the
// duplicate-call bound).
type fault struct {
	Kind     string    `json:"kind"`
	At       time.Time `json:"at"`
	Restored time.Time `json:"restored"`
	InFlight int       `json:"in_flight"`
	Exposed  int       `json:"exposed_calls"`
	// Recovery is from the fault's end until every request started and
	// unanswered when it began had a result (0: none was); Unseen counts
	// those whose result the harness did not see live.
	Recovery time.Duration `json:"recovery_ns"`
	Unseen   int           `json:"unseen,omitempty"`
	// pending are the requests started (the upstream saw a call) and
	// without a result when the fault began.
	pending []string
}

// run is one scenario's run: its env, what it published and what it did.
type run struct {
	e     *env
	sc    *scenario
	sz    size
	rnd   *rand.Rand
	start time.Time

	// failoverAt is when the Sentinel scenarios killed the primary.
	failoverAt time.Time

	mu        sync.Mutex
	cancelled map[string]bool // requests cancelled through the API
	batches   []string
	reqs      []invariant.Request
	faults    []fault
	notes     []string
	failures  []string
	ended     time.Time
}

// newBatch creates batch id over the API with n requests of model, window
// long, and returns its requests (not yet published).
func (r *run) newBatch(ctx context.Context, id, mdl string, n int, window string) ([]*lifecycle.Request, error) {
	if err := r.createBatch(ctx, id, n, window); err != nil {
		return nil, err
	}
	reqs := makeRequests(id, mdl, n)
	r.expect(id, reqs)
	return reqs, nil
}

// createBatch creates batch id over the API, sealed at total requests.
func (r *run) createBatch(ctx context.Context, id string, total int, window string) error {
	if _, err := r.e.api.CreateBatch(ctx, api.CreateParams{ID: id, CompletionWindow: window,
		Endpoint: "/v1/chat/completions", Total: int64(total)}); err != nil {
		return fmt.Errorf("create batch %s: %w", id, err)
	}
	return nil
}

// makeRequests are n requests of batch id for model, named <id>-r00000….
func makeRequests(id, mdl string, n int) []*lifecycle.Request {
	reqs := make([]*lifecycle.Request, n)
	for i := range reqs {
		reqs[i] = &lifecycle.Request{
			V: lifecycle.WireVersion, ID: fmt.Sprintf("%s-r%05d", id, i), BatchID: id,
			CustomID: fmt.Sprintf("task-%d", i), Model: mdl, Method: "POST", URL: "/v1/chat/completions",
			Body: fmt.Appendf(nil, `{"model":%q,"messages":[{"role":"user","content":"question %d"}]}`, mdl, i),
		}
	}
	return reqs
}

// expect adds a batch and its requests to what the checker expects to end.
func (r *run) expect(batch string, reqs []*lifecycle.Request) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !slices.Contains(r.batches, batch) {
		r.batches = append(r.batches, batch)
	}
	for _, q := range reqs {
		r.reqs = append(r.reqs, invariant.Request{ID: q.ID, BatchID: q.BatchID})
	}
}

// publish publishes reqs through the queue's publisher (Nats-Msg-Id = the
// request id).
func (r *run) publish(ctx context.Context, reqs []*lifecycle.Request) error {
	p := r.e.q.NewPublisher()
	for _, q := range reqs {
		if err := p.Publish(ctx, q); err != nil {
			return fmt.Errorf("publish %s: %w", q.ID, err)
		}
	}
	return p.Flush(ctx)
}

// defaultSetup is one batch of sz.n requests.
func defaultSetup(ctx context.Context, r *run) error {
	reqs, err := r.newBatch(ctx, r.sc.name, model, r.sz.n, "1h")
	if err != nil {
		return err
	}
	return r.publish(ctx, reqs)
}

// inFlight is the number of upstream calls being served now.
func (r *run) inFlight() int { return r.e.mock.Concurrent(model) + r.e.mock.Concurrent(fastModel) }

// started are the expected requests the upstream has seen a call for and
// that have no result yet: the work a fault starting now can cut.
func (r *run) started() []string {
	r.mu.Lock()
	reqs := append([]invariant.Request(nil), r.reqs...)
	r.mu.Unlock()
	var out []string
	for _, q := range reqs {
		if r.e.mock.CallsFor(q.ID) > 0 && len(r.e.res.outcomes(q.ID)) == 0 {
			out = append(out, q.ID)
		}
	}
	return out
}

// addFault records a fault that began at at, was undone now and may run
// again each of the inFlight calls; the requests it can have cut are those
// started and unanswered now.
func (r *run) addFault(kind string, at time.Time, inFlight int) {
	r.record(fault{Kind: kind, At: at, Restored: time.Now(), InFlight: inFlight, Exposed: inFlight, pending: r.started()})
}

// record adds ft to the run's faults and logs it.
func (r *run) record(ft fault) {
	r.mu.Lock()
	r.faults = append(r.faults, ft)
	r.mu.Unlock()
	r.e.log.Info().Str("scenario", r.sc.name).Str("fault", ft.Kind).Int("in_flight", ft.InFlight).
		Str("since_start", time.Since(r.start).Round(time.Millisecond).String()).Int("results", r.e.res.total()).Msg("fault")
}

// window runs a fault that lasts d: on() now, off() after d. The calls it
// may run again are those in flight when it began plus one per worker
// slot of the fleet: while it lasts a slot's call can time out (a stall
// past the first-byte timeout) or its lease end (a cut or slowed Redis or
// NATS) and be run again. That assumes a slot starts at most one more
// call before its claims or timeouts stall too: an argued bound, not a
// proven one (docs/RELIABILITY.md says so).
func (r *run) window(ctx context.Context, kind string, d time.Duration, on, off func()) error {
	at, inFlight, pending := time.Now(), r.inFlight(), r.started()
	on()
	err := pause(ctx, d)
	off()
	if err != nil {
		return err
	}
	r.record(fault{Kind: kind, At: at, Restored: time.Now(), InFlight: inFlight,
		Exposed: inFlight + r.e.slots(), pending: pending})
	return nil
}

// restartNode kills n and starts it again after down, recorded as kind.
func (r *run) restartNode(ctx context.Context, kind string, n *node, down time.Duration, ready func(context.Context) error) error {
	at, inFlight, pending := time.Now(), r.inFlight(), r.started()
	if err := r.e.restart(ctx, n, down, ready); err != nil {
		return fmt.Errorf("%s: %w", kind, err)
	}
	r.record(fault{Kind: kind, At: at, Restored: time.Now(), InFlight: inFlight, Exposed: inFlight, pending: pending})
	return nil
}

func (r *run) markCancelled(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cancelled == nil {
		r.cancelled = map[string]bool{}
	}
	r.cancelled[id] = true
}

func (r *run) isCancelled(id string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cancelled[id]
}

// outcomeCounts counts the expected requests by the first result seen
// ("completed", "failed malformed_message", …).
func (r *run) outcomeCounts() map[string]int {
	out := map[string]int{}
	for _, q := range r.reqs {
		os := r.e.res.outcomes(q.ID)
		if len(os) == 0 {
			out["none"]++
			continue
		}
		key := os[0].State
		if os[0].Code != "" {
			key += " " + os[0].Code
		}
		out[key]++
	}
	return out
}

// killWorker SIGKILLs a random worker and starts a new one in its place.
// The calls it may run again are bounded fleet-wide (the calls in flight
// on every worker): a worker does not report its own in-flight count.
func (r *run) killWorker(ctx context.Context) error {
	at, inFlight, pending := time.Now(), r.inFlight(), r.started()
	r.e.mu.Lock()
	i := r.rnd.IntN(len(r.e.workers))
	w := r.e.workers[i]
	r.e.mu.Unlock()
	r.e.p.Kill(w.c)
	if _, err := r.e.startWorker(ctx, i); err != nil {
		return fmt.Errorf("restart worker %d: %w", i, err)
	}
	r.record(fault{Kind: "kill worker", At: at, Restored: time.Now(), InFlight: inFlight, Exposed: inFlight, pending: pending})
	return nil
}

// killAt kills a random worker at each share of the results, so the kills
// land while the batch runs whatever its size.
func (r *run) killAt(ctx context.Context, shares []float64) error {
	for _, share := range shares {
		if err := r.waitResults(ctx, share); err != nil {
			return err
		}
		if err := r.killWorker(ctx); err != nil {
			return err
		}
	}
	return nil
}

// spread is n shares evenly from first to last.
func spread(n int, first, last float64) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[i] = first
		if n > 1 {
			out[i] += (last - first) * float64(i) / float64(n-1)
		}
	}
	return out
}

// note adds a line to the scenario's figures.
func (r *run) note(format string, args ...any) {
	r.mu.Lock()
	r.notes = append(r.notes, fmt.Sprintf(format, args...))
	r.mu.Unlock()
}

// fail records a failed scenario check.
func (r *run) fail(format string, args ...any) {
	r.mu.Lock()
	r.failures = append(r.failures, fmt.Sprintf(format, args...))
	r.mu.Unlock()
}

// errBatchesEnded: the batches ended before a fault's trigger came; the
// faults still to come are not injected (and the scenario fails when it
// misses its minimum, see scenario.minFaults).
var errBatchesEnded = errors.New("every batch ended first")

// waitResults waits until share of the published requests have a result
// (seen live), bounded by the scenario's timeout. The live count can miss
// results (a core subscription across a NATS restart), so it gives up with
// errBatchesEnded once every batch has ended (asked once a second).
func (r *run) waitResults(ctx context.Context, share float64) error {
	r.mu.Lock()
	want := int(share * float64(len(r.reqs)))
	r.mu.Unlock()
	var asked time.Time
	ended := false
	err := waitUntil(ctx, r.sz.timeout, fmt.Sprintf("%d results", want), func(ctx context.Context) bool {
		if r.e.res.total() >= want {
			return true
		}
		if time.Since(asked) >= time.Second {
			asked = time.Now()
			ended = r.allEnded(ctx)
		}
		return ended
	})
	if err == nil && ended {
		return fmt.Errorf("waiting for %d results (%.0f %%), %d seen: %w", want, 100*share, r.e.res.total(), errBatchesEnded)
	}
	return err
}

// unanswered is the number of expected requests without a result seen.
func (r *run) unanswered() int {
	r.mu.Lock()
	reqs := append([]invariant.Request(nil), r.reqs...)
	r.mu.Unlock()
	n := 0
	for _, q := range reqs {
		if len(r.e.res.outcomes(q.ID)) == 0 {
			n++
		}
	}
	return n
}

// allEnded reports whether every batch of the run is final (per the batch
// API).
func (r *run) allEnded(ctx context.Context) bool {
	r.mu.Lock()
	batches := append([]string(nil), r.batches...)
	r.mu.Unlock()
	// A short bound per call: a request sent while NATS is away may never
	// be answered.
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	for _, id := range batches {
		b, err := r.e.api.Batch(ctx, id)
		if client.IsCode(err, api.CodeNotFound) {
			// Only a scenario that wipes Redis may lose a batch; it has
			// ended once every request of it has a result.
			if r.sc.batchMayVanish && r.unanswered() == 0 {
				continue
			}
			return false
		}
		if err != nil {
			r.e.log.Debug().Err(err).Str("batch", id).Msg("batch.get")
			return false
		}
		if !lifecycle.BatchStatus(b.Status).Terminal() {
			return false
		}
	}
	return true
}

// batchStates describes every batch as the API reports it, for a failure message.
func (r *run) batchStates(ctx context.Context) string {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var parts []string
	for _, id := range r.batches {
		b, err := r.e.api.Batch(ctx, id)
		if err != nil {
			parts = append(parts, fmt.Sprintf("%s: %v", id, err))
			continue
		}
		parts = append(parts, fmt.Sprintf("%s: %s %+v %+v", id, b.Status, b.RequestCounts, b.Salvo))
	}
	return fmt.Sprintf("%d results seen; %s", r.e.res.total(), strings.Join(parts, "; "))
}

// execute runs the scenario on fresh servers: setup, faults while the
// batches run, wait for every batch to end, then the invariant check.
func (sc *scenario) execute(ctx context.Context, b bins, p procSet, sz size, seed uint64) (*figures, error) {
	ctx, cancel := context.WithTimeout(ctx, sz.timeout)
	defer cancel()
	prof := profile{}
	if sc.profile != nil {
		prof = sc.profile(sz)
	}
	if prof.mock.Script.Latency == nil {
		prof.mock.Script.Latency = &mockupstream.Latency{Min: sz.latency, Max: 2 * sz.latency}
	}
	if prof.mock.Seed == 0 {
		prof.mock.Seed = seed
	}
	begun := time.Now()
	e, err := startEnv(ctx, b, p.set, sz, prof, p.log)
	if err != nil {
		return nil, fmt.Errorf("%s: start: %w", sc.name, err)
	}
	defer e.stop()
	r := &run{e: e, sc: sc, sz: sz, rnd: rand.New(rand.NewPCG(seed, seed^0x9e3779b9)), start: time.Now()}
	setup := sc.setup
	if setup == nil {
		setup = defaultSetup
	}
	if err := setup(ctx, r); err != nil {
		return nil, fmt.Errorf("%s: setup: %w", sc.name, err)
	}
	injected := make(chan error, 1)
	injectCtx, stopInject := context.WithCancel(ctx)
	defer stopInject()
	go func() {
		if sc.inject == nil {
			injected <- nil
			return
		}
		injected <- sc.inject(injectCtx, r)
	}()
	// Every batch ends, and every fault is done, within the timeout.
	if err := waitUntil(ctx, sz.timeout, "every batch ended", func(ctx context.Context) bool {
		return r.allEnded(ctx)
	}); err != nil {
		return nil, fmt.Errorf("%s: %w (%s)", sc.name, err, r.batchStates(context.WithoutCancel(ctx)))
	}
	r.ended = time.Now()
	if err := <-injected; errors.Is(err, errBatchesEnded) {
		r.note("faults stopped: %v", err)
	} else if err != nil {
		return nil, fmt.Errorf("%s: inject: %w", sc.name, err)
	}
	r.checkFaults()
	if err := e.workersAlive(); err != nil {
		r.fail("a worker exited on its own: %v", err)
	}
	calls, err := invariant.FetchCalls(ctx, e.mock.URL())
	if err != nil {
		return nil, fmt.Errorf("%s: upstream calls: %w", sc.name, err)
	}
	rep, err := r.check(ctx, calls)
	if err != nil {
		return nil, fmt.Errorf("%s: check: %w", sc.name, err)
	}
	if sc.verify != nil {
		if err := sc.verify(ctx, r); err != nil {
			r.fail("%v", err)
		}
	}
	f := r.figures(rep, time.Since(begun))
	if sc.expect != nil {
		if err := sc.expect(r, rep); err != nil {
			r.fail("%v", err)
		}
		f.Expected = true
	} else if err := rep.Err(); err != nil {
		r.fail("invariant: %v", err)
	}
	if bound := f.inFlightBound(); rep.DuplicateCalls > bound {
		r.fail("%d duplicate upstream calls, more than the %d calls the faults exposed", rep.DuplicateCalls, bound)
	}
	f.Failures = r.failures
	f.Notes = r.notes
	f.Pass = len(r.failures) == 0
	return f, nil
}

// checkFaults fails the run when it injected fewer faults than the
// scenario must: a run whose batches ended before its faults came tested
// nothing.
func (r *run) checkFaults() {
	if r.sc.inject == nil {
		return
	}
	if r.sc.minFaults == nil {
		if len(r.faults) == 0 {
			r.fail("no fault was injected before the batches ended")
		}
		return
	}
	want := r.sc.minFaults(r.sz)
	kinds := make([]string, 0, len(want))
	for k := range want {
		kinds = append(kinds, k)
	}
	slices.Sort(kinds)
	for _, k := range kinds {
		n := 0
		for _, ft := range r.faults {
			if strings.HasPrefix(ft.Kind, k) {
				n++
			}
		}
		if n < want[k] {
			r.fail("%d of the %d planned faults %q were injected before the batches ended: the scenario did not test what it claims",
				n, want[k], k)
		}
	}
}

// check runs the invariant checker once JetStream answers on the
// harness's connection (after a node restart its API may be away for a
// moment); a read that still fails is tried again, three times at most.
func (r *run) check(ctx context.Context, calls map[string]invariant.Calls) (*invariant.Report, error) {
	if err := waitUntil(ctx, 30*time.Second, "JetStream answers", func(ctx context.Context) bool {
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		s, err := r.e.js.Stream(ctx, r.e.q.ResultsStream())
		return err == nil && s != nil
	}); err != nil {
		return nil, err
	}
	var err error
	for range 3 {
		var rep *invariant.Report
		rep, err = invariant.Check(ctx, invariant.Input{NATS: r.e.nc, Redis: r.e.rdb, Prefix: prefix,
			Requests: r.reqs, Batches: r.batches, Calls: calls})
		if err == nil {
			return rep, nil
		}
		r.e.log.Warn().Err(err).Str("scenario", r.sc.name).Msg("invariant check could not read; again in 2s")
		if perr := pause(ctx, 2*time.Second); perr != nil {
			return nil, perr
		}
	}
	return nil, err
}

// waitUntil polls cond every 100 ms until it holds, ctx ends or timeout passes.
func waitUntil(ctx context.Context, timeout time.Duration, what string, cond func(context.Context) bool) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tk := time.NewTicker(100 * time.Millisecond)
	defer tk.Stop()
	for {
		if cond(ctx) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w", what, ctx.Err())
		case <-tk.C:
		}
	}
}

// every runs f at most count times, interval apart, until ctx ends or
// stop reports true; f's errors end it.
func every(ctx context.Context, interval time.Duration, count int, stop func() bool, f func(i int) error) error {
	for i := range count {
		if err := pause(ctx, interval); err != nil {
			if errors.Is(err, context.Canceled) {
				return nil
			}
			return err
		}
		if stop() {
			return nil
		}
		if err := f(i); err != nil {
			return err
		}
	}
	return nil
}

// joinLines formats violations for a failure line.
func joinLines(vs []string, n int) string {
	if len(vs) > n {
		return strings.Join(vs[:n], "; ") + fmt.Sprintf("; … %d more", len(vs)-n)
	}
	return strings.Join(vs, "; ")
}
