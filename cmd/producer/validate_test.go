package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

const goodLine = `{"custom_id":"a","method":"POST","url":"/v1/chat/completions","body":{"model":"gpt-4o","messages":[]}}` + "\n"

func TestValidateReportsBadLinesByNumber(t *testing.T) {
	t.Parallel()
	r := cli(t, nil, "validate", "../../examples/batch.jsonl")
	require.Equal(t, exitFailed, r.code, "the example holds one deliberately bad line")
	require.Contains(t, r.out, "line 14: body.model: is required")
	require.Contains(t, r.out, "24 request(s) valid, 1 line(s) rejected")

	r = cli(t, nil, "validate", "--json", "../../examples/batch.jsonl")
	require.Equal(t, exitFailed, r.code)
	var v validation
	require.NoError(t, json.Unmarshal([]byte(r.out), &v))
	require.Equal(t, 24, v.Valid)
	require.Equal(t, []rejectedLine{{Line: 14, Code: "invalid_request", Field: "body.model", Reason: "is required", CustomID: v.Rejected[0].CustomID}}, v.Rejected)
}

func TestValidateCleanFile(t *testing.T) {
	t.Parallel()
	p := filepath.Join(t.TempDir(), "ok.jsonl")
	require.NoError(t, os.WriteFile(p, []byte(goodLine), 0o600))
	for _, args := range [][]string{
		{"validate", "--window", "1h", p},
		{"validate", "--completion-window", "1h", p},
	} {
		r := cli(t, nil, args...)
		require.Equal(t, exitOK, r.code)
		require.Contains(t, r.out, "1 request(s) valid, 0 line(s) rejected")
	}
}

func TestValidateEnforcesTheLimits(t *testing.T) {
	t.Parallel()
	p := filepath.Join(t.TempDir(), "two.jsonl")
	second := `{"custom_id":"b","method":"POST","url":"/v1/chat/completions","body":{"model":"gpt-4o","messages":[]}}` + "\n"
	require.NoError(t, os.WriteFile(p, []byte(goodLine+second), 0o600))

	r := cli(t, nil, "validate", "--max-requests", "1", p)
	require.Equal(t, exitFailed, r.code)
	require.Contains(t, r.out, "line 2: the batch already has the maximum of 1 requests")

	r = cli(t, nil, "validate", "--max-bytes", "10", p)
	require.Equal(t, exitFailed, r.code)
	require.Contains(t, r.err, "over --max-bytes 10")

	r = cli(t, nil, "validate", filepath.Join(t.TempDir(), "missing.jsonl"))
	require.Equal(t, exitFailed, r.code, "an unreadable input is bad input, not usage")
	require.Contains(t, r.err, "no such file")
}
