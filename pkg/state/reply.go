package state

import (
	"fmt"
	"strconv"
	"time"
)

// reply is a script's array reply: strings and integers.
type reply []any

// asReply converts a script result into a reply.
func asReply(v any) (reply, error) {
	arr, ok := v.([]any)
	if !ok || len(arr) == 0 {
		return nil, fmt.Errorf("state: unexpected script reply %T", v)
	}
	return reply(arr), nil
}

// code is the reply's first element: what the script decided.
func (r reply) code() string { return r.str(0) }

func (r reply) str(i int) string {
	if i >= len(r) {
		return ""
	}
	switch v := r[i].(type) {
	case string:
		return v
	case int64:
		return strconv.FormatInt(v, 10)
	}
	return ""
}

func (r reply) int(i int) int64 {
	if i >= len(r) {
		return 0
	}
	switch v := r[i].(type) {
	case int64:
		return v
	case string:
		n, _ := strconv.ParseInt(v, 10, 64)
		return n
	}
	return 0
}

// hash reads a flat field/value list starting at i (an HGETALL appended to
// the reply); nil when there is none.
func (r reply) hash(i int) map[string]string {
	if i >= len(r) {
		return nil
	}
	m := make(map[string]string, (len(r)-i)/2)
	for j := i; j+1 < len(r); j += 2 {
		m[r.str(j)] = r.str(j + 1)
	}
	return m
}

// msTime converts unix milliseconds to a time; 0 is the zero time.
func msTime(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}

// fieldInt reads an integer field of a decoded hash; 0 when absent.
func fieldInt(m map[string]string, k string) int64 {
	n, _ := strconv.ParseInt(m[k], 10, 64)
	return n
}

// fieldTime reads a unix-ms field of a decoded hash.
func fieldTime(m map[string]string, k string) time.Time { return msTime(fieldInt(m, k)) }

// toMS converts a time to unix ms; the zero time is 0.
func toMS(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}
