package lifecycle

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// ParseRetryAfter reads a Retry-After header value in either form: delay
// seconds ("120") or an HTTP-date ("Wed, 21 Oct 2015 07:28:00 GMT"),
// relative to now. It returns false for an empty or malformed value. A date
// in the past yields a zero delay and true.
func ParseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if allDigits(v) {
		// delay-seconds is 1*DIGIT (RFC 9110 §10.2.3): no sign, no fraction.
		// A value too large for a Duration is clamped, not rejected.
		const maxSecs = int64(1<<63-1) / int64(time.Second)
		secs, err := strconv.ParseInt(v, 10, 64)
		if err != nil || secs > maxSecs {
			secs = maxSecs
		}
		return time.Duration(secs) * time.Second, true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	if d := t.Sub(now); d > 0 {
		return d, true
	}
	return 0, true
}

func allDigits(v string) bool {
	for i := 0; i < len(v); i++ {
		if v[i] < '0' || v[i] > '9' {
			return false
		}
	}
	return v != ""
}
