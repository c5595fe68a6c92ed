package lifecycle_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/salvo-run/salvo/pkg/lifecycle"
)

func TestParseCompletionWindow(t *testing.T) {
	tests := []struct {
		in      string
		want    time.Duration
		errPart string // "" means no error
	}{
		{"24h", 24 * time.Hour, ""},
		{"1h", time.Hour, ""},
		{"", lifecycle.CompletionWindowDefault, ""},
		{"  ", lifecycle.CompletionWindowDefault, ""},
		{" 24h ", 24 * time.Hour, ""},
		{"90m", 90 * time.Minute, ""},
		{"2h30m", 150 * time.Minute, ""},
		{"1s", time.Second, ""},
		{"168h", 7 * 24 * time.Hour, ""},
		{"169h", 0, "exceeds the maximum"},
		{"0", 0, "must be positive"},
		{"0s", 0, "must be positive"},
		{"-1h", 0, "must be positive"},
		{"1d", 0, "is not a duration"},
		{"24", 0, "is not a duration"},
		{"soon", 0, "is not a duration"},
		{"24 h", 0, "is not a duration"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := lifecycle.ParseCompletionWindow(tt.in)
			if tt.errPart == "" {
				require.NoError(t, err)
				require.Equal(t, tt.want, got)
				return
			}
			require.Error(t, err)
			require.Contains(t, err.Error(), "completion_window:")
			require.Contains(t, err.Error(), tt.errPart)
			require.Zero(t, got)
		})
	}
}
