package queue

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/salvo-run/salvo/pkg/lifecycle"
)

// The leader does not reject as unrouted the messages of a model it has
// just announced: a worker that routes it may be creating its consumer.
// A grace after the first announcement they are rejected as before, and a
// model no longer queued is forgotten.
func TestAnnouncedModelsAreNotRejectedWithinTheGrace(t *testing.T) {
	co := &Consumer{c: &Client{cfg: Config{DiscoveryInterval: time.Second}, subj: subjects{prefix: "p"}}}
	subj := func(model string) (string, string) {
		s, err := co.c.subj.request(model, "b1")
		require.NoError(t, err)
		tok, err := lifecycle.EncodeToken(model)
		require.NoError(t, err)
		return s, tok
	}
	sNew, tokNew := subj("m/new")
	sOld, _ := subj("m/old")
	queued := map[string]string{tokNew: "m/new"}
	t0 := time.Unix(1_700_000_000, 0)
	grace := unroutedGraceIntervals * time.Second

	got := co.afterAnnouncing([]string{tokNew}, queued, []string{sNew, sOld}, t0)
	require.Equal(t, []string{sOld}, got, "just announced: kept from the rejection")

	got = co.afterAnnouncing([]string{tokNew}, queued, []string{sNew}, t0.Add(grace-time.Millisecond))
	require.Empty(t, got, "announced again within the grace: the first announcement counts")

	got = co.afterAnnouncing([]string{tokNew}, queued, []string{sNew}, t0.Add(grace))
	require.Equal(t, []string{sNew}, got, "still unserved a grace after its first announcement")

	co.afterAnnouncing(nil, map[string]string{}, nil, t0.Add(grace))
	require.Empty(t, co.announcedAt, "models no longer queued are forgotten")
}
