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
	// RecoveryMax is the longest time from a fault's end to the first
	// result after it; ToEnd is from the last fault's end to the last batch
	// ending.
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
	for _, ft := range r.faults {
		if at, ok := r.e.res.firstAfter(ft.Restored); ok {
			f.RecoveryMax = max(f.RecoveryMax, at.Sub(ft.Restored))
		}
		if ft.Restored.After(last) {
			last = ft.Restored
		}
	}
	if !last.IsZero() && r.ended.After(last) {
		f.ToEnd = r.ended.Sub(last)
	}
	return f
}

// inFlightBound is the most duplicate upstream calls the faults can
// explain: every call in flight when a fault hit may run again.
func (f *figures) inFlightBound() int {
	n := 0
	for _, ft := range f.Faults {
		n += ft.InFlight
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
		fmt.Fprintf(w, "  recovery: first result after a fault within %s (max), last batch ended %s after the last fault\n",
			f.RecoveryMax.Round(time.Millisecond), f.ToEnd.Round(time.Millisecond))
	}
	for _, n := range f.Notes {
		fmt.Fprintf(w, "  note: %s\n", n)
	}
	if f.Expected && len(f.Violations) > 0 {
		fmt.Fprintf(w, "  expected violations (%d): %s\n", len(f.Violations), joinLines(f.Violations, 3))
	}
	for _, x := range f.Failures {
		fmt.Fprintf(w, "  FAILED: %s\n", x)
	}
}

// markdownTable writes the figures as the table of docs/RELIABILITY.md.
func markdownTable(w io.Writer, fs []*figures) {
	fmt.Fprintln(w, "| scenario | requests | faults injected | lost | doubled results | duplicate upstream calls (bound) | recovery (first result after a fault, max) | last fault → all ended | verdict |")
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
