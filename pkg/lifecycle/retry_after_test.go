package lifecycle_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/salvo-run/salvo/pkg/lifecycle"
)

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2015, 10, 21, 7, 28, 0, 0, time.UTC)
	// The largest whole number of seconds a Duration holds.
	clamped := time.Duration(int64(1<<63-1) / int64(time.Second) * int64(time.Second))
	tests := []struct {
		name string
		in   string
		want time.Duration
		ok   bool
	}{
		{"seconds", "120", 120 * time.Second, true},
		{"zero seconds", "0", 0, true},
		{"surrounding space", "  7 ", 7 * time.Second, true},
		{"leading zeros", "007", 7 * time.Second, true},
		{"huge seconds clamp", "99999999999", clamped, true},
		{"seconds beyond int64 clamp", "99999999999999999999999", clamped, true},
		{"imf-fixdate in the future", "Wed, 21 Oct 2015 07:30:00 GMT", 2 * time.Minute, true},
		{"rfc850 date", "Wednesday, 21-Oct-15 07:29:00 GMT", time.Minute, true},
		{"asctime date", "Wed Oct 21 07:28:30 2015", 30 * time.Second, true},
		{"date now", "Wed, 21 Oct 2015 07:28:00 GMT", 0, true},
		{"date in the past", "Wed, 21 Oct 2015 06:00:00 GMT", 0, true},
		{"empty", "", 0, false},
		{"blank", "   ", 0, false},
		{"negative", "-5", 0, false},
		{"plus sign", "+5", 0, false},
		{"fraction", "1.5", 0, false},
		{"unit suffix", "5s", 0, false},
		{"garbage", "soon", 0, false},
		{"rfc3339 is not an http-date", "2015-10-21T07:30:00Z", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := lifecycle.ParseRetryAfter(tt.in, now)
			require.Equal(t, tt.ok, ok)
			require.Equal(t, tt.want, got)
		})
	}
}
