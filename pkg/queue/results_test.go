package queue_test

import (
	"bytes"
	"encoding/json"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/salvo-run/salvo/pkg/lifecycle"
	"github.com/salvo-run/salvo/pkg/queue"
)

func result(id, batch string, body []byte) *lifecycle.Result {
	return &lifecycle.Result{
		V: lifecycle.WireVersion, ID: id, BatchID: batch, CustomID: "c-" + id, State: lifecycle.StateCompleted,
		Attempts: 1, Response: &lifecycle.ResultResponse{StatusCode: 200, Body: body},
	}
}

func TestResultsReplayAndSubscribe(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for _, id := range []string{"r1", "r2", "r1"} { // r1 twice: deduplicated
		require.NoError(t, b.c.PublishResult(ctx(t), result(id, "batch-r", []byte(`{"ok":true}`)), ""))
	}
	require.NoError(t, b.c.PublishResult(ctx(t), result("other", "batch-x", nil), ""))
	// The same id in another batch is another request: stored too.
	require.NoError(t, b.c.PublishResult(ctx(t), result("r1", "batch-x", nil), ""))
	require.Equal(t, uint64(4), streamMsgs(t, b.js, "SALVO_RESULTS"))

	var ids []string
	require.NoError(t, b.c.ReplayResults(ctx(t), "batch-r", func(r *lifecycle.Result) error {
		ids = append(ids, r.ID)
		return nil
	}))
	require.Equal(t, []string{"r1", "r2"}, ids)
	require.NoError(t, b.c.ReplayResults(ctx(t), "empty-batch", func(*lifecycle.Result) error {
		t.Fatal("no results expected")
		return nil
	}))

	var mu sync.Mutex
	var live []string
	stop, err := b.c.SubscribeResults(ctx(t), "batch-r", func(r *lifecycle.Result) {
		mu.Lock()
		live = append(live, r.ID)
		mu.Unlock()
	})
	require.NoError(t, err)
	defer stop()
	require.NoError(t, b.c.PublishResult(ctx(t), result("r3", "batch-r", nil), ""))
	waitFor(t, eventually, "three live results", func() bool { mu.Lock(); defer mu.Unlock(); return len(live) == 3 })
	stop()
	stop()
	mu.Lock()
	require.Equal(t, []string{"r1", "r2", "r3"}, live)
	mu.Unlock()
}

func TestLargeResultBodyGoesToObjectStore(t *testing.T) {
	t.Parallel()
	b := setup(t)
	big := map[string]string{"text": string(bytes.Repeat([]byte("x"), int(b.nc.MaxPayload())+1000))}
	body, err := json.Marshal(big)
	require.NoError(t, err)
	res := result("huge", "batch-h", body)
	require.NoError(t, b.c.PublishResult(ctx(t), res, ""))
	require.Equal(t, body, []byte(res.Response.Body), "PublishResult must not modify its argument")

	var got *lifecycle.Result
	require.NoError(t, b.c.ReplayResults(ctx(t), "batch-h", func(r *lifecycle.Result) error { got = r; return nil }))
	require.NotNil(t, got)
	require.Empty(t, got.Response.Body)
	require.NotNil(t, got.Response.BodyRef)
	require.Equal(t, "SALVO_BODIES", got.Response.BodyRef.Bucket)
	require.Equal(t, int64(len(body)), got.Response.BodyRef.Size)
	require.NoError(t, b.c.ResolveBody(ctx(t), got))
	require.JSONEq(t, string(body), string(got.Response.Body))
}

func TestResultAlsoDeliveredToResultSubject(t *testing.T) {
	t.Parallel()
	b := setup(t)
	sub, err := b.nc.SubscribeSync("client.inbox.results")
	require.NoError(t, err)
	require.NoError(t, b.nc.Flush())
	require.NoError(t, b.c.PublishResult(ctx(t), result("rs-1", "", nil), "client.inbox.results"))
	m, err := sub.NextMsg(eventually)
	require.NoError(t, err)
	var r lifecycle.Result
	require.NoError(t, json.Unmarshal(m.Data, &r))
	require.Equal(t, "rs-1", r.ID)
	require.NoError(t, sub.Unsubscribe())

	for _, bad := range []string{"salvo.req.m.b", "salvo.ctl.cancel.x", "$JS.API.STREAM.DELETE.X", "a.*", "a..b"} {
		require.ErrorIs(t, b.c.PublishResult(ctx(t), result("rs-2", "", nil), bad), queue.ErrInvalidSubject, bad)
	}
}

// An already encoded result is published as it is when it fits; one over
// the max payload still has its body moved to the object store.
func TestPublishEncodedResult(t *testing.T) {
	t.Parallel()
	b := setup(t)
	small := result("enc-small", "batch-e", []byte(`{"ok":true}`))
	data, err := json.Marshal(small)
	require.NoError(t, err)
	require.NoError(t, b.c.PublishEncodedResult(ctx(t), small, data, ""))

	bigBody, err := json.Marshal(map[string]string{"text": string(bytes.Repeat([]byte("y"), int(b.nc.MaxPayload())+10))})
	require.NoError(t, err)
	big := result("enc-big", "batch-e", bigBody)
	bigData, err := json.Marshal(big)
	require.NoError(t, err)
	require.NoError(t, b.c.PublishEncodedResult(ctx(t), big, bigData, ""))

	s, err := b.js.Stream(ctx(t), "SALVO_RESULTS")
	require.NoError(t, err)
	raw, err := s.GetLastMsgForSubject(ctx(t), b.c.ResultSubject("batch-e"))
	require.NoError(t, err)
	require.Contains(t, string(raw.Data), "body_ref", "the big body went to the object store")
	got := map[string]*lifecycle.Result{}
	require.NoError(t, b.c.ReplayResults(ctx(t), "batch-e", func(r *lifecycle.Result) error { got[r.ID] = r; return nil }))
	require.JSONEq(t, `{"ok":true}`, string(got["enc-small"].Response.Body))
	require.NoError(t, b.c.ResolveBody(ctx(t), got["enc-big"]))
	require.JSONEq(t, string(bigBody), string(got["enc-big"].Response.Body))
}
