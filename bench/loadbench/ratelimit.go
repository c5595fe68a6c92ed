package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// mockStats is the mock upstream's GET /mock/stats (internal/mockupstream.Stats).
type mockStats struct {
	Calls          int64            `json:"calls"`
	Statuses       map[string]int64 `json:"statuses"`
	TokensAdmitted int64            `json:"tokens_admitted"`
	FirstCall      time.Time        `json:"first_call"`
	LastCall       time.Time        `json:"last_call"`
	HoldAt         time.Time        `json:"hold_at"`
	HoldViolations int64            `json:"hold_violations"`
	CallsAfterHold int64            `json:"calls_after_hold"`
}

// tokensPerMinute is the token throughput the mock admitted over its
// first to last call.
func (m *mockStats) tokensPerMinute() float64 {
	d := m.LastCall.Sub(m.FirstCall)
	if d <= 0 {
		return 0
	}
	return float64(m.TokensAdmitted) / d.Minutes()
}

func fetchMockStats(ctx context.Context, mockURL string) (*mockStats, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, mockURL+"/mock/stats", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("mock stats: %w", err)
	}
	defer resp.Body.Close()
	var m mockStats
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		return nil, fmt.Errorf("mock stats: %w", err)
	}
	return &m, nil
}

// adaptiveLimit reads the first worker's adaptive limit from /limits.
func (s *salvo) adaptiveLimit(ctx context.Context) (int, error) {
	if len(s.ports) == 0 {
		return 0, nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://127.0.0.1:"+strconv.Itoa(s.ports[0])+"/limits", nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, fmt.Errorf("worker limits: %w", err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	var ks []struct {
		Limit int `json:"adaptive_limit"`
	}
	if err := json.Unmarshal(data, &ks); err != nil || len(ks) == 0 {
		return 0, fmt.Errorf("worker limits: %q: %w", data, err)
	}
	return ks[0].Limit, nil
}

// mixedBody is request i's body in the rate-limit scenarios: a prompt of
// 10 to 2,400-odd bytes (about 3 to 600 tokens) and max_tokens 16.
func mixedBody(model string, i int) []byte {
	filler := strings.Repeat("lorem ", (i*7919)%400)
	return fmt.Appendf(nil, `{"model":%q,"max_tokens":16,"messages":[{"role":"user","content":"question %d %s"}]}`, model, i, filler)
}

// rateLimitGroups are the scenarios of issue 16: the limiter on and off
// against a mock enforcing RPM and TPM; one 429 with retry-after seen by
// one of three workers; adaptive concurrency against a self-hosted mock
// with a knee, next to a sweep of fixed concurrencies.
func rateLimitGroups(sc string, o *options, b bins) []*group {
	switch sc {
	case "ratelimit":
		mock := []string{"-rpm", "600", "-tpm", "200000", "-latency", "20ms"}
		return []*group{{scenario: sc, n: o.rlN,
			title: "3 workers × 64, mock enforcing 600 RPM and 200,000 TPM with OpenAI headers, mixed request sizes",
			entries: []entry{
				{label: "limiter on", sys: &salvo{b: b, concurrency: 64, workers: 3, mixed: true}, mockArgs: mock},
				{label: "limiter off", sys: &salvo{b: b, concurrency: 64, workers: 3, mixed: true,
					env: []string{"SALVO_RATE_LIMITS_DISABLED=true"}}, mockArgs: mock},
			}}}
	case "hold":
		return []*group{{scenario: sc, n: o.holdN,
			title: "3 workers × 64, call 500 answers 429 retry-after 2s; calls arriving during the hold, with and without OpenAI limit headers (1,000,000 RPM) on the other answers",
			entries: []entry{
				{label: "headers", sys: &salvo{b: b, concurrency: 64, workers: 3},
					mockArgs: []string{"-rpm", "1000000", "-hold-after", "500", "-hold", "2s", "-latency", "20ms"}},
				{label: "no headers", sys: &salvo{b: b, concurrency: 64, workers: 3},
					mockArgs: []string{"-hold-after", "500", "-hold", "2s", "-latency", "20ms"}},
			}}}
	case "adaptive":
		mock := []string{"-knee", "48", "-latency", "50ms"}
		g := &group{scenario: sc, n: o.adaptiveN, title: "1 worker, self-hosted mock, knee at 48 calls in flight, 50ms below it"}
		for _, c := range []int{16, 32, 48, 64, 96} {
			g.entries = append(g.entries, entry{label: "fixed " + strconv.Itoa(c), sys: &salvo{b: b, concurrency: c, workers: 1}, mockArgs: mock})
		}
		g.entries = append(g.entries, entry{label: "adaptive", sys: &salvo{b: b, concurrency: 256, workers: 1, adaptive: true,
			env: []string{"SALVO_RATE_LIMITS_ADAPTIVE_ENABLED=true"}}, mockArgs: mock})
		return []*group{g}
	}
	return nil
}

// rateLimitLine is the extra of a round's line in these scenarios.
func rateLimitLine(f *figures) string {
	var b strings.Builder
	if m := f.Mock; m != nil {
		fmt.Fprintf(&b, ", mock: %d calls, %d answered 429 (%.1f %%), %.0f tokens/min admitted, wall %.1fs",
			m.Calls, m.Statuses["429"], 100*float64(m.Statuses["429"])/float64(max(m.Calls, 1)), m.tokensPerMinute(), f.WindowS)
		if !m.HoldAt.IsZero() {
			fmt.Fprintf(&b, ", %d calls during the hold, %d in the second after it", m.HoldViolations, m.CallsAfterHold)
		}
	}
	if f.AdaptiveLimit > 0 {
		fmt.Fprintf(&b, ", adaptive limit at the end %d", f.AdaptiveLimit)
	}
	return b.String()
}
