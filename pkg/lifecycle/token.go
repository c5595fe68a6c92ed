package lifecycle

import (
	"errors"
	"fmt"
	"strings"
)

// BatchlessToken is the subject token of requests that belong to no batch.
// EncodeToken never produces it: a lone "_" always starts an escape.
const BatchlessToken = "_"

// EncodeToken turns an arbitrary non-empty name (a model such as
// "meta-llama/Llama-3.1-8B:free", a batch id) into one NATS subject token.
//
// The encoding is injective and reversible: ASCII letters, digits and '-'
// stand for themselves; every other byte, '_' included, becomes '_'
// followed by two upper-case hex digits. So "gpt-4o" stays "gpt-4o" and
// "a/b.c" becomes "a_2Fb_2Ec". The output uses only [A-Za-z0-9_-], which is
// valid in subject tokens, consumer names and stream names alike.
func EncodeToken(name string) (string, error) {
	if name == "" {
		return "", errors.New("lifecycle: cannot encode an empty name as a subject token")
	}
	var b strings.Builder
	b.Grow(len(name))
	for i := 0; i < len(name); i++ {
		c := name[i]
		if plainTokenByte(c) {
			b.WriteByte(c)
			continue
		}
		const hex = "0123456789ABCDEF"
		b.WriteByte('_')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&0x0f])
	}
	return b.String(), nil
}

// MustEncodeToken is EncodeToken for names already validated non-empty.
func MustEncodeToken(name string) string {
	t, err := EncodeToken(name)
	if err != nil {
		panic(err)
	}
	return t
}

// DecodeToken reverses EncodeToken. It rejects anything EncodeToken could
// not have produced, so decode(encode(x)) == x and encode(decode(t)) == t.
func DecodeToken(tok string) (string, error) {
	if tok == "" {
		return "", errors.New("lifecycle: empty subject token")
	}
	out := make([]byte, 0, len(tok))
	for i := 0; i < len(tok); i++ {
		c := tok[i]
		if plainTokenByte(c) {
			out = append(out, c)
			continue
		}
		if c != '_' || i+2 >= len(tok) {
			return "", fmt.Errorf("lifecycle: invalid subject token %q at byte %d", tok, i)
		}
		hi, ok1 := unhex(tok[i+1])
		lo, ok2 := unhex(tok[i+2])
		if !ok1 || !ok2 {
			return "", fmt.Errorf("lifecycle: invalid escape in subject token %q at byte %d", tok, i)
		}
		v := hi<<4 | lo
		if plainTokenByte(v) {
			return "", fmt.Errorf("lifecycle: non-canonical escape in subject token %q at byte %d", tok, i)
		}
		out = append(out, v)
		i += 2
	}
	return string(out), nil
}

func plainTokenByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-'
}

// unhex accepts only upper-case hex digits, keeping the encoding canonical.
func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// BatchToken is the subject token for a batch id, BatchlessToken for "".
func BatchToken(batchID string) string {
	if batchID == "" {
		return BatchlessToken
	}
	return MustEncodeToken(batchID)
}
