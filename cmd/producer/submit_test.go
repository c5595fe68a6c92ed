package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// writeInput writes n request lines, the lines in bad (1-based) without
// body.model.
func writeInput(t *testing.T, n int, bad ...int) string {
	t.Helper()
	isBad := map[int]bool{}
	for _, b := range bad {
		isBad[b] = true
	}
	var sb strings.Builder
	for i := 1; i <= n; i++ {
		model := `"model":"gpt-4o-mini",`
		if isBad[i] {
			model = ""
		}
		fmt.Fprintf(&sb, `{"custom_id":"row-%d","method":"POST","url":"/v1/chat/completions","body":{%s"messages":[{"role":"user","content":"q%d"}]}}`+"\n", i, model, i)
	}
	p := filepath.Join(t.TempDir(), "input.jsonl")
	require.NoError(t, os.WriteFile(p, []byte(sb.String()), 0o600))
	return p
}

// submit refuses a file with bad lines, naming each, and publishes
// nothing; --skip-invalid --wait runs the rest to completion, prints the
// id alone first, and writes the output and error files.
func TestSubmitRefusesBadLinesThenWaitsAndWritesResults(t *testing.T) {
	t.Parallel()
	d := newDeployment(t)
	in := writeInput(t, 40, 3, 17)

	r := cli(t, d.env(), "submit", "--batch-id", "sub-1", in)
	require.Equal(t, exitFailed, r.code)
	require.Contains(t, r.err, "line 3: body.model: is required")
	require.Contains(t, r.err, "line 17: body.model: is required")
	require.Contains(t, r.err, "nothing published")
	require.Empty(t, r.out)

	dir := t.TempDir()
	out, errs := filepath.Join(dir, "out.jsonl"), filepath.Join(dir, "err.jsonl")
	r = cli(t, d.env(), "submit", "--batch-id", "sub-1", "--skip-invalid", "--wait", "--interval", "20ms",
		"--output", out, "--errors", errs, in)
	require.Equal(t, exitOK, r.code)
	require.Equal(t, "sub-1\n", r.out, "stdout holds the id alone: BATCH=$(producer submit FILE) works")
	require.Contains(t, r.err, "batch sub-1 completed in")
	require.Equal(t, 38, countFileLines(t, out))
	require.Equal(t, 2, countFileLines(t, errs))

	r = cli(t, d.env(), "submit", "--json", "--batch-id", "sub-1", "--skip-invalid", in)
	require.Equal(t, exitOK, r.code, "the same submit again is idempotent")
	var b struct {
		ID string `json:"id"`
	}
	require.NoError(t, json.Unmarshal([]byte(r.out), &b))
	require.Equal(t, "sub-1", b.ID)
}

func countFileLines(t *testing.T, path string) int {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	n := 0
	for s := bufio.NewScanner(f); s.Scan(); {
		n++
	}
	return n
}

// TestSubmitTenThousandLines: a 10,000-line file with 3 bad lines is
// refused naming the 3 lines, with nothing published; fixed, `submit
// --wait --output` runs it to completion and the output file has 10,000
// lines whose custom_ids follow the input order.
func TestSubmitTenThousandLines(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	t.Parallel()
	const n = 10_000
	d := newDeployment(t)

	r := cli(t, d.env(), "submit", "--batch-id", "big-1", writeInput(t, n, 10, 5000, 9999))
	require.Equal(t, exitFailed, r.code)
	for _, line := range []int{10, 5000, 9999} {
		require.Contains(t, r.err, fmt.Sprintf("line %d: body.model: is required", line))
	}
	require.Equal(t, 3, strings.Count(r.err, "body.model: is required"), "exactly the 3 bad lines")
	require.Zero(t, d.requestsStored(t), "nothing published")

	out := filepath.Join(t.TempDir(), "out.jsonl")
	r = cli(t, d.env(), "submit", "--batch-id", "big-1", "--wait", "--interval", "100ms", "--output", out, writeInput(t, n))
	require.Equal(t, exitOK, r.code, r.err)
	require.Contains(t, r.err, "upstream: 0 retries", "the summary reads the results' retries")
	require.EqualValues(t, n, d.requestsStored(t))
	f, err := os.Open(out)
	require.NoError(t, err)
	defer f.Close()
	i := 0
	for s := bufio.NewScanner(f); s.Scan(); {
		i++
		var l struct {
			CustomID string `json:"custom_id"`
		}
		require.NoError(t, json.Unmarshal(s.Bytes(), &l))
		require.Equal(t, fmt.Sprintf("row-%d", i), l.CustomID, "output line %d", i)
	}
	require.Equal(t, n, i)
}
