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
