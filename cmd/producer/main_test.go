package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestValidateReportsBadLinesByNumber(t *testing.T) {
	var out bytes.Buffer
	code, err := run([]string{"validate", "../../examples/batch.jsonl"}, &out)
	require.NoError(t, err)
	require.Equal(t, 1, code, "the example holds one deliberately bad line")
	require.Contains(t, out.String(), "line 14: body.model: is required")
	require.Contains(t, out.String(), "24 request(s) valid, 1 line(s) rejected")
}

func TestValidateCleanFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "ok.jsonl")
	line := `{"custom_id":"a","method":"POST","url":"/v1/chat/completions","body":{"model":"gpt-4o","messages":[]}}` + "\n"
	require.NoError(t, os.WriteFile(p, []byte(line), 0o600))
	var out bytes.Buffer
	code, err := run([]string{"validate", "-window", "1h", p}, &out)
	require.NoError(t, err)
	require.Equal(t, 0, code)
	require.Contains(t, out.String(), "1 request(s) valid, 0 line(s) rejected")
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{nil, {"submit"}, {"validate"}, {"validate", "-window", "0h", "x"}} {
		code, err := run(args, &bytes.Buffer{})
		require.Error(t, err, "%v", args)
		require.Equal(t, 2, code, "%v", args)
	}
}
