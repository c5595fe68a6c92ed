package worker

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
)

// Configured models keep their label however many other names clients
// send through the default route; the others stop at maxModelLabels.
func TestModelLabelsKeepConfiguredModels(t *testing.T) {
	t.Parallel()
	l := labels{models: map[string]struct{}{}, pinned: map[string]struct{}{"gpt-4o": {}}}
	for i := range maxModelLabels {
		require.Equal(t, fmt.Sprintf("junk-%d", i), l.model(fmt.Sprintf("junk-%d", i)))
	}
	require.Equal(t, otherModel, l.model("junk-late"))
	require.Equal(t, "gpt-4o", l.model("gpt-4o"), "a configured model is never pushed out")
}

func TestBudgetLabelHidesKeyHashes(t *testing.T) {
	t.Parallel()
	require.Equal(t, "key", budgetLabel("key:3f2a9c0d11aa22bb"))
	require.Equal(t, "team-a", budgetLabel("team-a"))
}
