package api_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/salvo-run/salvo/pkg/api"
	"github.com/salvo-run/salvo/pkg/lifecycle"
)

func TestConfigErrorsNameTheKey(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		cfg api.Config
		key string
	}{
		{api.Config{Prefix: "a.b"}, "prefix"},
		{api.Config{MaxBody: -1}, "max_body"},
		{api.Config{Timeout: -1}, "timeout"},
	} {
		err := tt.cfg.WithDefaults().Validate()
		ce, ok := lifecycle.AsConfigError(err)
		require.True(t, ok, "%v", err)
		require.Equal(t, tt.key, ce.Key)
	}
	require.NoError(t, api.Config{}.WithDefaults().Validate())
}

func TestNewRequiresEveryDependency(t *testing.T) {
	t.Parallel()
	f := newFakeBackend()
	_, err := api.New(api.Deps{Store: f, Events: f}, api.Config{})
	require.ErrorContains(t, err, "Deps.Engine")
}

func TestMicroVersionIsSemantic(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"dev":          "0.0.0-dev",
		"v1.4.2":       "1.4.2",
		"1.4.2-rc.1":   "1.4.2-rc.1",
		"1.2":          "0.0.0-1-2",
		"0123":         "0.0.0-dev-0123",
		"":             "0.0.0-dev-",
		"abc1234dirty": "0.0.0-abc1234dirty",
	} {
		require.Equal(t, want, api.MicroVersion(in), in)
	}
}
