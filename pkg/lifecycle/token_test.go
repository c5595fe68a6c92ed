package lifecycle_test

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/salvo-run/salvo/pkg/lifecycle"
)

func TestEncodeToken(t *testing.T) {
	tests := []struct{ name, token string }{
		{"gpt-4o", "gpt-4o"},
		{"meta-llama/Llama-3.1-8B", "meta-llama_2FLlama-3_2E1-8B"},
		{"llama3:8b", "llama3_3A8b"},
		{"a b", "a_20b"},
		{"under_score", "under_5Fscore"},
		{"_", "_5F"},
		{"*", "_2A"},
		{">", "_3E"},
		{"a.b.c", "a_2Eb_2Ec"},
		{"é", "_C3_A9"},
		{"\x00\x7f\xff", "_00_7F_FF"},
		{"batch_abc123", "batch_5Fabc123"},
	}
	for _, tt := range tests {
		got, err := lifecycle.EncodeToken(tt.name)
		require.NoError(t, err, tt.name)
		require.Equal(t, tt.token, got, tt.name)
		require.Equal(t, tt.token, lifecycle.MustEncodeToken(tt.name))
		back, err := lifecycle.DecodeToken(got)
		require.NoError(t, err, tt.name)
		require.Equal(t, tt.name, back)
	}
	_, err := lifecycle.EncodeToken("")
	require.Error(t, err)
	require.Panics(t, func() { lifecycle.MustEncodeToken("") })
}

func TestDecodeTokenRejectsNonCanonical(t *testing.T) {
	for _, tok := range []string{
		"",       // empty
		"_",      // the batchless token is not an encoding of any name
		"a_",     // truncated escape
		"a_2",    // truncated escape
		"_2e",    // lower-case hex
		"_G0",    // not hex
		"_41",    // 'A' must stand for itself
		"_2D",    // '-' must stand for itself
		"_30",    // '0' must stand for itself
		"a.b",    // a separator is never part of a token
		"a b",    // whitespace
		"*", ">", // wildcards
		"a\x00", // control byte
		"é",     // non-ASCII
	} {
		_, err := lifecycle.DecodeToken(tok)
		require.Error(t, err, "%q", tok)
	}
}

func TestBatchToken(t *testing.T) {
	require.Equal(t, lifecycle.BatchlessToken, lifecycle.BatchToken(""))
	require.Equal(t, "_", lifecycle.BatchToken(""))
	require.Equal(t, "batch-1", lifecycle.BatchToken("batch-1"))
	require.Equal(t, "batch_5F1", lifecycle.BatchToken("batch_1"))
	// No batch id can collide with the batchless token.
	require.NotEqual(t, lifecycle.BatchlessToken, lifecycle.BatchToken("_"))
}

// validSubjectToken reports whether tok may stand alone as one NATS subject
// token: non-empty, no '.', no wildcards, no whitespace or control bytes.
func validSubjectToken(tok string) bool {
	if tok == "" || !utf8.ValidString(tok) {
		return false
	}
	for _, r := range tok {
		if r <= ' ' || r == 0x7f || r == '.' || r == '*' || r == '>' {
			return false
		}
	}
	return true
}

// FuzzTokenRoundTrip: EncodeToken round-trips through DecodeToken, always
// yields a valid subject token in [A-Za-z0-9_-], and DecodeToken accepts only
// canonical tokens (decode then encode gives the input back).
func FuzzTokenRoundTrip(f *testing.F) {
	for _, s := range []string{
		"gpt-4o", "meta-llama/Llama-3.1-8B", "a b", "_", "__", "_2F", "a.*.>",
		"é", "\x00", "\xff\xfe", "model:tag@v1", strings.Repeat("x", 300),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tok, err := lifecycle.EncodeToken(s)
		if s == "" {
			require.Error(t, err)
		} else {
			require.NoError(t, err)
			require.True(t, validSubjectToken(tok), "invalid subject token %q for %q", tok, s)
			require.NotEqual(t, lifecycle.BatchlessToken, tok)
			for i := 0; i < len(tok); i++ {
				c := tok[i]
				ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_'
				require.True(t, ok, "byte %q in %q", c, tok)
			}
			back, err := lifecycle.DecodeToken(tok)
			require.NoError(t, err)
			require.Equal(t, s, back)
		}
		// Treat s as a token too: it decodes only if it is canonical.
		name, err := lifecycle.DecodeToken(s)
		if err != nil {
			return
		}
		again, err := lifecycle.EncodeToken(name)
		require.NoError(t, err)
		require.Equal(t, s, again, "DecodeToken accepted non-canonical %q", s)
	})
}
