package main

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/salvo-run/salvo/pkg/api"
	"github.com/salvo-run/salvo/pkg/lifecycle"
)

// status, list and cancel against a worker: the table and --json show
// what the batch API holds, the filters reach it, and cancel ends a batch.
func TestStatusListAndCancelAgainstAWorker(t *testing.T) {
	t.Parallel()
	d := newDeployment(t)
	env := d.env()

	d.createBatch(t, "done-1", 3, map[string]string{"team": "search"})
	d.publish(t, "done-1", 0, 3)
	d.waitStatus(t, "done-1", lifecycle.BatchCompleted)
	d.createBatch(t, "open-1", 5, map[string]string{"team": "ads"})

	r := cli(t, env, "status", "done-1")
	require.Equal(t, exitOK, r.code)
	for _, want := range []string{
		"Batch          done-1", "Status         completed", "Metadata       team=search",
		"Requests       3 of 3 ended\n", "completed 3, failed 0, expired 0, canceled 0, superseded 0",
		"total 3, completed 3, failed 0", "published 3, missing 0", "Created", "Completed",
	} {
		require.Contains(t, r.out, want)
	}

	r = cli(t, env, "status", "--json", "done-1")
	require.Equal(t, exitOK, r.code)
	var b api.BatchObject
	require.NoError(t, json.Unmarshal([]byte(r.out), &b))
	require.Equal(t, "completed", b.Status)
	require.EqualValues(t, 3, b.Salvo.Counts.Completed)

	r = cli(t, env, "status", "nope-1")
	require.Equal(t, exitFailed, r.code, "an unknown batch is an API refusal, not unreachable")
	require.Contains(t, r.err, "not_found")

	r = cli(t, env, "list")
	require.Equal(t, exitOK, r.code)
	require.Regexp(t, `(?m)^ID\s+STATUS\s+ENDED\s+COMPLETED\s+FAILED\s+CREATED$`, r.out)
	require.Regexp(t, `(?m)^open-1\s+validating\s+0/5\s+0\s+0\s`, r.out)
	require.Regexp(t, `(?m)^done-1\s+completed\s+3/3\s+3\s+0\s`, r.out)

	r = cli(t, env, "list", "--json", "--metadata", "team=search")
	require.Equal(t, exitOK, r.code)
	var l api.BatchList
	require.NoError(t, json.Unmarshal([]byte(r.out), &l))
	require.Len(t, l.Data, 1)
	require.Equal(t, "done-1", l.Data[0].ID)

	r = cli(t, env, "list", "--status", "validating")
	require.Equal(t, exitOK, r.code)
	require.Contains(t, r.out, "open-1")
	require.NotContains(t, r.out, "done-1")

	r = cli(t, env, "list", "--limit", "1")
	require.Equal(t, exitOK, r.code)
	require.Contains(t, r.err, "--after ", "the next page is named")

	r = cli(t, env, "cancel", "--request", "open-1-0", "--batch", "open-1")
	require.Equal(t, exitOK, r.code)
	require.Equal(t, "request open-1-0: canceled\n", r.out)

	r = cli(t, env, "cancel", "open-1")
	require.Equal(t, exitOK, r.code)
	require.Regexp(t, `^batch open-1: (cancelling|cancelled)\n$`, r.out)
	d.waitStatus(t, "open-1", lifecycle.BatchCancelled)

	r = cli(t, env, "watch", "open-1")
	require.Equal(t, exitFailed, r.code, "watch exits 1 for a cancelled batch")
	require.Contains(t, r.out, "batch open-1 cancelled in")
	r = cli(t, env, "watch", "done-1")
	require.Equal(t, exitOK, r.code)
}
