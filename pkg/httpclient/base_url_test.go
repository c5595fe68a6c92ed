package httpclient

import (
	"testing"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"
)

// A base_url carrying credentials is refused by a message that names the
// field and never the value, whatever else is wrong with it.
func TestBaseURLUserInfoNeverEchoed(t *testing.T) {
	t.Parallel()
	const secret = "s3cr3t-pw"
	for _, raw := range []string{
		"https://u:" + secret + "@api.example.com",
		"https://" + secret + "@api.example.com/v1",
		"ftp://u:" + secret + "@api.example.com",          // bad scheme too
		"https://u:" + secret + "@api.example.com:port",   // bad port too
		"https://u:" + secret + "@api.example.com/v1?q=1", // query too
		"u:" + secret + "@api.example.com",                // no scheme
	} {
		cfg := Config{Routes: map[string]Route{"gpt-4o": {BaseURL: raw}}}.WithDefaults()
		err := cfg.Validate()
		require.Error(t, err, raw)
		require.Contains(t, err.Error(), `routes["gpt-4o"].base_url`, raw)
		require.NotContains(t, err.Error(), secret, raw)

		_, err = New(Config{Default: &Route{BaseURL: raw}}, zerolog.Nop())
		require.ErrorIs(t, err, ErrInvalidConfig, raw)
		require.Contains(t, err.Error(), "default.base_url", raw)
		require.NotContains(t, err.Error(), secret, raw)
	}
}
