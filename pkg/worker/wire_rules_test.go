package worker_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"

	"github.com/salvo-run/salvo/pkg/lifecycle"
)

// The same request id in two batches is two requests: publish dedup is
// scoped by batch, so batch B is not dropped as a duplicate of batch A, and
// both results are stored.
func TestRequestIDReusedInAnotherBatchRunsInBoth(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	a := e.newBatch(t, "b-reuse-a", "gpt-4o", 1, time.Hour)
	b := e.newBatch(t, "b-reuse-b", "gpt-4o", 1, time.Hour)
	a[0].ID, b[0].ID = "shared-id", "shared-id"
	e.startWorker(t, workerOpts{})

	e.publish(t, a)
	e.waitResults(t, "b-reuse-a", 1, 30*time.Second)
	e.publish(t, b) // well inside the duplicate window
	resB := e.waitResults(t, "b-reuse-b", 1, 30*time.Second)
	require.Equal(t, lifecycle.StateCompleted, resB["shared-id"].State)
	require.Equal(t, "b-reuse-b", resB["shared-id"].BatchID)

	for _, id := range []string{"b-reuse-a", "b-reuse-b"} {
		waitFor(t, 10*time.Second, id+" finalized", func() bool { return e.batch(t, id).Status == lifecycle.BatchCompleted })
		require.Equal(t, lifecycle.Counts{Total: 1, Completed: 1}, e.batch(t, id).Counts, id)
		require.Equal(t, uint64(1), e.resultCount(t, id), id)
	}
	require.Equal(t, 2, e.mock.CallsFor("shared-id"), "one upstream call per batch")
}

// publishRaw stores body on the request subject of model and batchID as a
// foreign client could, bypassing the Publisher's validation. msgID ""
// sends no Nats-Msg-Id.
func (e *env) publishRaw(t *testing.T, model, batchID, msgID, body string) {
	t.Helper()
	subj, err := e.q.RequestSubject(model, batchID)
	require.NoError(t, err)
	m := nats.NewMsg(subj)
	m.Data = []byte(body)
	if msgID != "" {
		m.Header.Set("Nats-Msg-Id", msgID)
	}
	_, err = e.js.PublishMsg(bg(t), m)
	require.NoError(t, err)
}

// A request whose body names another model than its envelope fails as
// malformed_message naming both models, and counts in its batch; the one
// whose models agree completes.
func TestBodyModelMismatchIsMalformed(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	reqs := e.newBatch(t, "b-models", "gpt-4o", 2, time.Hour)
	e.startWorker(t, workerOpts{})
	e.publish(t, reqs[:1])
	bad := fmt.Sprintf(`{"v":1,"id":%q,"batch_id":"b-models","custom_id":"task-1","model":"gpt-4o","method":"POST","url":"/v1/chat/completions","body":{"model":"o1-pro","messages":[]},"expires_at":%q}`,
		reqs[1].ID, reqs[1].ExpiresAt.Format(time.RFC3339))
	e.publishRaw(t, "gpt-4o", "b-models", reqs[1].ID, bad)

	results := e.waitResults(t, "b-models", 2, 30*time.Second)
	require.Equal(t, lifecycle.StateCompleted, results[reqs[0].ID].State)
	res := results[reqs[1].ID]
	require.Equal(t, lifecycle.StateFailed, res.State)
	require.Equal(t, lifecycle.CodeMalformedMessage, res.Error.Code)
	require.Contains(t, res.Error.Message, `"o1-pro"`)
	require.Contains(t, res.Error.Message, `"gpt-4o"`)
	waitFor(t, 5*time.Second, "batch finalized", func() bool { return e.batch(t, "b-models").Status == lifecycle.BatchCompleted })
	require.Equal(t, lifecycle.Counts{Total: 2, Completed: 1, Failed: 1}, e.batch(t, "b-models").Counts)
	require.Zero(t, e.mock.CallsFor(reqs[1].ID), "a mismatching request never reaches the upstream")
}

// A message whose body is not JSON and that carries no Nats-Msg-Id has no
// readable id: it is still counted in the batch of its subject, under an id
// derived from its stream sequence, and its failed result is published, so
// the batch finishes. Two workers: the id is the same whichever reports it.
func TestMalformedMessageWithoutIDFinishesItsBatch(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	reqs := e.newBatch(t, "b-noid", "gpt-4o", 3, time.Hour)
	e.startWorker(t, workerOpts{})
	e.startWorker(t, workerOpts{})
	e.publish(t, reqs[:2])
	e.publishRaw(t, "gpt-4o", "b-noid", "", `this is not JSON`)

	results := e.waitResults(t, "b-noid", 3, 30*time.Second)
	var synthetic *lifecycle.Result
	for id, res := range results {
		if id != reqs[0].ID && id != reqs[1].ID {
			synthetic = res
		}
	}
	require.NotNil(t, synthetic)
	require.Regexp(t, `^malformed-[0-9]+$`, synthetic.ID)
	require.Equal(t, "b-noid", synthetic.BatchID)
	require.Equal(t, lifecycle.StateFailed, synthetic.State)
	require.Equal(t, lifecycle.CodeMalformedMessage, synthetic.Error.Code)
	require.Contains(t, synthetic.Error.Message, "with no id")
	require.Contains(t, synthetic.Error.Message, "decode request")
	waitFor(t, 5*time.Second, "batch finalized", func() bool { return e.batch(t, "b-noid").Status == lifecycle.BatchCompleted })
	require.Equal(t, lifecycle.Counts{Total: 3, Completed: 2, Failed: 1}, e.batch(t, "b-noid").Counts)
	require.Equal(t, lifecycle.StateFailed, e.record(t, &lifecycle.Request{ID: synthetic.ID, BatchID: "b-noid"}).State)
}
