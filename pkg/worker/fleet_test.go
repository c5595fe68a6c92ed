package worker_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/salvo-run/salvo/internal/mockupstream"
	"github.com/salvo-run/salvo/internal/testupstream"
	"github.com/salvo-run/salvo/pkg/httpclient"
	"github.com/salvo-run/salvo/pkg/lifecycle"
)

// A heterogeneous fleet: two workers share Redis and NATS, but worker A
// routes only model m-a (to its own upstream) and worker B only m-b (to
// another), with no default route. Every pod sees both models' subjects;
// each must serve only the model it routes and leave the other to its peer,
// so a batch mixing both completes in full, none of it unrouted_model.
func TestEachWorkerServesOnlyTheModelsItRoutes(t *testing.T) {
	t.Parallel()
	const perModel = 40
	e := newEnv(t, envOpts{})
	upA := e.mock // serves only worker A
	upB := testupstream.New(t, mockupstream.Options{})
	hcA := httpclient.Config{Routes: map[string]httpclient.Route{"m-a": {BaseURL: upA.URL()}}}
	hcB := httpclient.Config{Routes: map[string]httpclient.Route{"m-b": {BaseURL: upB.URL()}}}
	e.startWorker(t, workerOpts{http: &hcA})
	e.startWorker(t, workerOpts{http: &hcB})

	reqs := e.newBatch(t, "b-fleet", "m-a", 2*perModel, time.Hour)
	for i, r := range reqs[perModel:] {
		r.Model = "m-b"
		r.Body = []byte(fmt.Sprintf(`{"model":"m-b","messages":[{"role":"user","content":"question %d"}]}`, perModel+i))
	}
	e.publish(t, reqs)

	results := e.waitResults(t, "b-fleet", 2*perModel, 60*time.Second)
	for i, r := range reqs {
		res := results[r.ID]
		require.NotNil(t, res, "no result for %s", r.ID)
		if res.Error != nil {
			require.NotEqual(t, lifecycle.CodeUnroutedModel, res.Error.Code, "%s (%s) ended unrouted_model", r.ID, r.Model)
		}
		require.Equal(t, lifecycle.StateCompleted, res.State, "%s (%s)", r.ID, r.Model)
		served, other := upA, upB
		if i >= perModel {
			served, other = upB, upA
		}
		require.Equal(t, 1, served.CallsFor(r.ID), "%s (%s) sent once to the upstream of the worker that routes it", r.ID, r.Model)
		require.Zero(t, other.CallsFor(r.ID), "%s (%s) never sent to the other worker's upstream", r.ID, r.Model)
	}
	require.Equal(t, int64(perModel), upA.Calls(), "worker A's upstream saw only m-a, each once")
	require.Equal(t, int64(perModel), upB.Calls(), "worker B's upstream saw only m-b, each once")
	waitFor(t, 10*time.Second, "b-fleet finalized", func() bool { return e.batch(t, "b-fleet").Status == lifecycle.BatchCompleted })
	require.Equal(t, lifecycle.Counts{Total: 2 * perModel, Completed: 2 * perModel}, e.batch(t, "b-fleet").Counts)
}
