package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
)

// median of xs (the mean of the middle two for an even count).
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// spread is "median (min–max)" of xs with the given format.
func spread(format string, xs []float64) string {
	if len(xs) == 0 {
		return "–"
	}
	return fmt.Sprintf(format+" ("+format+"–"+format+")", median(xs), slices.Min(xs), slices.Max(xs))
}

var cpuParts = []string{"sut", "nats-server", "redis-server", "mockupstream", "loadgen"}

// writeGroup prints a group's table as Markdown: per entry the medians over
// the rounds, then the first entry's ratios to each other entry, computed
// per round and summarised by their median.
func writeGroup(w io.Writer, g *group, rounds [][]*figures) {
	fmt.Fprintf(w, "\n### %s: %s, %d requests per round, %d rounds\n\n", g.scenario, g.title, g.n, len(rounds))
	fmt.Fprintf(w, "| system | req/s median (min–max) | CPU-µs/req: %s | all processes | SUT peak RSS MiB |\n",
		strings.Join(cpuParts, " | "))
	fmt.Fprintf(w, "|---|---|%s---|---|\n", strings.Repeat("---|", len(cpuParts)))
	for i, e := range g.entries {
		var rps, total, rss []float64
		parts := map[string][]float64{}
		for _, r := range rounds {
			f := r[i]
			if f == nil {
				continue
			}
			rps = append(rps, f.ReqPerS)
			total = append(total, f.cpuTotal())
			rss = append(rss, f.PeakRSSMiB)
			for _, p := range cpuParts {
				parts[p] = append(parts[p], f.CPUus[p])
			}
		}
		cells := make([]string, 0, len(cpuParts))
		for _, p := range cpuParts {
			cells = append(cells, fmt.Sprintf("%.0f", median(parts[p])))
		}
		fmt.Fprintf(w, "| %s | %s | %s | %.0f | %s |\n", e.label, spread("%.0f", rps), strings.Join(cells, " | "),
			median(total), spread("%.1f", rss))
	}
	if len(g.entries) < 2 {
		return
	}
	first := g.entries[0].label
	fmt.Fprintf(w, "\n| ratio (per round, median (min–max)) | req/s | SUT CPU-µs/req | all-process CPU-µs/req | peak RSS |\n|---|---|---|---|---|\n")
	for i := 1; i < len(g.entries); i++ {
		var rps, sut, total, rss []float64
		for _, r := range rounds {
			a, b := r[0], r[i]
			if a == nil || b == nil {
				continue
			}
			rps = append(rps, a.ReqPerS/b.ReqPerS)
			sut = append(sut, a.CPUus["sut"]/b.CPUus["sut"])
			total = append(total, a.cpuTotal()/b.cpuTotal())
			rss = append(rss, a.PeakRSSMiB/b.PeakRSSMiB)
		}
		fmt.Fprintf(w, "| %s / %s | %s | %s | %s | %s |\n", first, g.entries[i].label,
			spread("%.2f", rps), spread("%.2f", sut), spread("%.2f", total), spread("%.2f", rss))
	}
}
