package gateway

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestConfigRefusesKeysInClear: Config.Keys holds hashes; a key given in
// clear by mistake is refused without being echoed whole.
func TestConfigRefusesKeysInClear(t *testing.T) {
	cfg := Config{Keys: map[string]string{"sk-live-very-secret-key": "team"}}.withDefaults()
	err := cfg.validate()
	require.Error(t, err)
	require.NotContains(t, err.Error(), "very-secret", "the key is not echoed")
	require.Contains(t, err.Error(), "hash-key")

	require.Error(t, Config{}.withDefaults().validate(), "no key at all")
	ok := Config{Keys: map[string]string{HashKey("sk-a"): "a"}}.withDefaults()
	require.NoError(t, ok.validate())
	require.Len(t, HashKey("x"), 64)
	require.NotEqual(t, HashKey("sk-a"), HashKey("sk-b"))

	bad := ok
	bad.Windows = []string{"24h", "forever"}
	require.ErrorContains(t, bad.validate(), "forever")
}
