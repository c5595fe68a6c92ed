package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/salvo-run/salvo/internal/invariant"
)

// figures are one scenario's measured outcome, as printed and as stored in
// the JSON report.
type figures struct {
	Scenario string `json:"scenario"`
	Title    string `json:"title"`
	Size     string `json:"size"`
	Requests int    `json:"requests"`
	Batches  int    `json:"batches"`
	// Faults are the faults injected, in order.
	Faults         []fault `json:"faults"`
	ResultMessages int     `json:"result_messages"`
	Lost           int     `json:"lost"`
	Doubled        int     `json:"doubled"`
	Stranded       int     `json:"stranded"`
	CounterSkews   int     `json:"counter_skews"`
	Unended        int     `json:"unended"`
	// Other counts the checker's other findings: mismatched lines,
	// publish and event skews, completed requests never answered.
	Other          int `json:"other_violations"`
	UpstreamCalls  int `json:"upstream_calls"`
	DuplicateCalls int `json:"duplicate_calls"`
	// RecoveryMax is the longest time from a fault's end until every
	// request started and unanswered when it began had its result
	// (fault.Recovery); ToEnd is from the last fault's end to the last
	// batch ending.
	RecoveryMax time.Duration `json:"recovery_max_ns"`
	ToEnd       time.Duration `json:"to_end_ns"`
	Duration    time.Duration `json:"duration_ns"`
	// Expected: the scenario loses state on purpose and judged the
	// violations itself (they are listed, with what detected them).
	Expected   bool     `json:"expected_violations,omitempty"`
	Violations []string `json:"violations,omitempty"`
	Notes      []string `json:"notes,omitempty"`
	Failures   []string `json:"failures,omitempty"`
	Pass       bool     `json:"pass"`
}

func (r *run) figures(rep *invariant.Report, took time.Duration) *figures {
	f := &figures{
		Scenario: r.sc.name, Title: r.sc.title, Size: r.sz.name,
		Requests: rep.Requests, Batches: rep.Batches, Faults: r.faults,
		ResultMessages: rep.ResultMessages, Lost: rep.Lost, Doubled: rep.Doubled, Stranded: rep.Stranded,
		CounterSkews: rep.CounterSkews, Unended: rep.Unended, DuplicateCalls: rep.DuplicateCalls,
		Other:         rep.Mismatched + rep.PublishSkews + rep.EventSkews + rep.Unanswered,
		UpstreamCalls: rep.UpstreamCalls,
		Duration:      took, Violations: rep.Violations,
	}
	var last time.Time
	for i := range r.faults {
		ft := &r.faults[i]
		ft.Recovery, ft.Unseen = r.recovery(*ft)
		f.RecoveryMax = max(f.RecoveryMax, ft.Recovery)
		if ft.Restored.After(last) {
			last = ft.Restored
		}
	}
	f.Faults = r.faults
	if !last.IsZero() && r.ended.After(last) {
		f.ToEnd = r.ended.Sub(last)
	}
	return f
}

// recovery is the time from ft's end until the last of the requests it
// could cut (started and unanswered when it began) had its first result,
// 0 when they all had it before the fault ended; unseen counts those
// whose result the harness did not see live (the checker still reads
// them from the stream).
func (r *run) recovery(ft fault) (time.Duration, int) {
	var d time.Duration
	unseen := 0
	for _, id := range ft.pending {
		os := r.e.res.outcomes(id)
		if len(os) == 0 {
			unseen++
			continue
		}
		d = max(d, os[0].At.Sub(ft.Restored))
	}
	return d, unseen
}

// inFlightBound is the most duplicate upstream calls the faults can
// explain: the sum of the calls each may run again (fault.Exposed).
func (f *figures) inFlightBound() int {
	n := 0
	for _, ft := range f.Faults {
		n += ft.Exposed
	}
	return n
}

// faultSummary is "3× kill worker, 1× cut redis".
func (f *figures) faultSummary() string {
	if len(f.Faults) == 0 {
		return "none"
	}
	var order []string
	count := map[string]int{}
	for _, ft := range f.Faults {
		if count[ft.Kind] == 0 {
			order = append(order, ft.Kind)
		}
		count[ft.Kind]++
	}
	parts := make([]string, len(order))
	for i, k := range order {
		parts[i] = fmt.Sprintf("%d× %s", count[k], k)
	}
	return strings.Join(parts, ", ")
}

// print writes the scenario's figures as a few lines.
func (f *figures) print(w io.Writer) {
	verdict := "PASS"
	if !f.Pass {
		verdict = "FAIL"
	}
	fmt.Fprintf(w, "%s %-22s %s (%s)\n", verdict, f.Scenario, f.Title, f.Duration.Round(time.Second))
	fmt.Fprintf(w, "  requests %d, batches %d, result messages %d, faults: %s\n",
		f.Requests, f.Batches, f.ResultMessages, f.faultSummary())
	fmt.Fprintf(w, "  lost %d, doubled %d, stranded %d, counter skews %d, unended %d, other %d; upstream calls %d, duplicate %d (bound %d)\n",
		f.Lost, f.Doubled, f.Stranded, f.CounterSkews, f.Unended, f.Other, f.UpstreamCalls, f.DuplicateCalls, f.inFlightBound())
	if len(f.Faults) > 0 {
		unseen := 0
		for _, ft := range f.Faults {
			unseen += ft.Unseen
		}
		fmt.Fprintf(w, "  recovery: every request cut by a fault had its result %s after the fault ended (max; %d results not seen live), last batch ended %s after the last fault\n",
			f.RecoveryMax.Round(time.Millisecond), unseen, f.ToEnd.Round(time.Millisecond))
	}
	for _, n := range f.Notes {
		fmt.Fprintf(w, "  note: %s\n", n)
	}
	if f.Expected && len(f.Violations) > 0 {
		fmt.Fprintf(w, "  expected violations (%d listed, at most 20 of a kind; the counts are above): %s\n", len(f.Violations), joinLines(f.Violations, 3))
	}
	for _, x := range f.Failures {
		fmt.Fprintf(w, "  FAILED: %s\n", x)
	}
}

// markdownTable writes the figures as the table of docs/RELIABILITY.md.
func markdownTable(w io.Writer, fs []*figures) {
	fmt.Fprintln(w, "| scenario | requests | faults injected | lost | doubled results | duplicate upstream calls (bound) | recovery (every request cut by a fault answered, max) | last fault → all ended | verdict |")
	fmt.Fprintln(w, "|---|---:|---|---:|---:|---:|---:|---:|---|")
	for _, f := range fs {
		verdict := "pass"
		if !f.Pass {
			verdict = "**FAIL**"
		} else if f.Expected && len(f.Violations) > 0 {
			verdict = "pass (loss detected)"
		}
		fmt.Fprintf(w, "| %s | %d | %s | %d | %d | %d (%d) | %s | %s | %s |\n", f.Scenario, f.Requests, f.faultSummary(),
			f.Lost, f.Doubled, f.DuplicateCalls, f.inFlightBound(), f.RecoveryMax.Round(time.Millisecond),
			f.ToEnd.Round(time.Millisecond), verdict)
	}
}

// writeJSON writes every scenario's figures to path.
func writeJSON(path string, fs []*figures) error {
	data, err := json.MarshalIndent(fs, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(data, '\n'), 0o600)
}
