package gateway_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/openai/openai-go/v3"
	"github.com/stretchr/testify/require"

	"github.com/salvo-run/salvo/pkg/batchfile"
)

// apiError is the SDK's error of a call that must fail with status (a
// copy: the fields, not an error value).
func apiError(t *testing.T, err error, status int) openai.Error {
	t.Helper()
	var ae *openai.Error
	require.ErrorAs(t, err, &ae)
	require.Equal(t, status, ae.StatusCode, ae.RawJSON())
	require.NotEmpty(t, ae.Message)
	return *ae
}

// TestTenantBCannotSeeOrCancelTenantAsFilesAndBatches: tenant B's key
// gets 404 on every call naming tenant A's file or batch — get, content,
// delete, cancel, and a batch over A's file — and lists nothing; A's batch
// and file are unaffected and the batch completes.
func TestTenantBCannotSeeOrCancelTenantAsFilesAndBatches(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := context.Background()

	f := upload(t, e.a, "a.jsonl", chatLine("a-1", modelOK, "mine"), chatLine("a-2", modelOK, "mine too"))
	b := newBatch(t, e.a, f.ID)

	_, err := e.b.Files.Get(ctx, f.ID)
	require.Equal(t, "id", apiError(t, err, http.StatusNotFound).Param)
	_, err = e.b.Files.Content(ctx, f.ID) //nolint:bodyclose // an error has no body to close
	apiError(t, err, http.StatusNotFound)
	_, err = e.b.Files.Delete(ctx, f.ID)
	apiError(t, err, http.StatusNotFound)
	_, err = e.b.Batches.Get(ctx, b.ID)
	apiError(t, err, http.StatusNotFound)
	_, err = e.b.Batches.Cancel(ctx, b.ID)
	apiError(t, err, http.StatusNotFound)
	_, err = e.b.Batches.New(ctx, openai.BatchNewParams{InputFileID: f.ID,
		Endpoint: openai.BatchNewParamsEndpointV1ChatCompletions, CompletionWindow: openai.BatchNewParamsCompletionWindow24h})
	require.Equal(t, "input_file_id", apiError(t, err, http.StatusNotFound).Param)

	bl, err := e.b.Batches.List(ctx, openai.BatchListParams{})
	require.NoError(t, err)
	require.Empty(t, bl.Data)
	require.False(t, bl.HasMore)
	fl, err := e.b.Files.List(ctx, openai.FileListParams{})
	require.NoError(t, err)
	require.Empty(t, fl.Data)

	done := waitStatus(t, e.a, b.ID, openai.BatchStatusCompleted, 30*time.Second)
	require.Equal(t, int64(2), done.RequestCounts.Completed)
	require.Zero(t, done.CancellingAt, "B's cancel did not reach A's batch")
	require.Len(t, lines(content(t, e.a, done.OutputFileID)), 2)
	_, err = e.b.Files.Content(ctx, done.OutputFileID) //nolint:bodyclose // an error has no body to close
	apiError(t, err, http.StatusNotFound)
	_, err = e.a.Files.Get(ctx, f.ID)
	require.NoError(t, err, "A's file survived B's delete")

	al, err := e.a.Batches.List(ctx, openai.BatchListParams{})
	require.NoError(t, err)
	require.Len(t, al.Data, 1)
	require.Equal(t, b.ID, al.Data[0].ID)
}

// TestKeysNeverReachLogsStoresOrUpstream: after a batch ran and tenant B
// was refused, neither tenant's key appears in any log line of the worker
// or the gateway, in any JetStream message (the gateway's key-value
// bucket and object store included: their entries, headers and
// metadata), nor in any call the upstream received.
func TestKeysNeverReachLogsStoresOrUpstream(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := context.Background()

	f := upload(t, e.a, "a.jsonl", chatLine("a-1", modelOK, "hello"), chatLine("a-2", modelOK, refuse))
	b := newBatch(t, e.a, f.ID)
	_, err := e.b.Batches.Get(ctx, b.ID)
	apiError(t, err, http.StatusNotFound)
	wrong := e.client(t, "sk-wrong-key-0000")
	_, err = wrong.Batches.Get(ctx, b.ID)
	apiError(t, err, http.StatusUnauthorized)
	done := waitStatus(t, e.a, b.ID, openai.BatchStatusCompleted, 30*time.Second)
	require.NotEmpty(t, e.logs.String(), "the test captures the logs")

	secrets := []string{keyA, keyB, "sk-wrong-key-0000"}
	for _, line := range strings.Split(e.logs.String(), "\n") {
		for _, k := range secrets {
			require.NotContains(t, line, k, "a key in a log line")
		}
	}

	// Every message of every stream: the gateway's object store and
	// key-value bucket are streams too.
	js, err := jetstream.New(e.nc)
	require.NoError(t, err)
	kv, err := js.KeyValue(ctx, strings.ToUpper(e.prefix)+"_GATEWAY")
	require.NoError(t, err)
	keys, err := kv.ListKeys(ctx)
	require.NoError(t, err)
	n := 0
	for k := range keys.Keys() {
		entry, err := kv.Get(ctx, k)
		require.NoError(t, err)
		for _, s := range secrets {
			require.NotContains(t, k+string(entry.Value()), s)
		}
		n++
	}
	require.Equal(t, 1, n, "one batch record")
	obs, err := js.ObjectStore(ctx, strings.ToUpper(e.prefix)+"_FILES")
	require.NoError(t, err)
	infos, err := obs.List(ctx)
	require.NoError(t, err)
	require.Len(t, infos, 3, "the input, output and error files")
	for _, info := range infos {
		flat := info.Name + info.Description
		for k, v := range info.Metadata {
			flat += k + v
		}
		for k, v := range info.Headers {
			flat += k + strings.Join(v, ",")
		}
		for _, s := range secrets {
			require.NotContains(t, flat, s)
		}
	}
	streams := js.ListStreams(ctx)
	scanned := 0
	for info := range streams.Info() {
		st, err := js.Stream(ctx, info.Config.Name)
		require.NoError(t, err)
		for seq := info.State.FirstSeq; seq > 0 && seq <= info.State.LastSeq; seq++ {
			m, err := st.GetMsg(ctx, seq)
			if errors.Is(err, jetstream.ErrMsgNotFound) {
				continue // acked off a work queue, or deleted
			}
			require.NoError(t, err)
			flat := m.Subject + string(m.Data)
			for k, v := range m.Header {
				flat += k + strings.Join(v, ",")
			}
			for _, s := range secrets {
				require.NotContains(t, flat, s, "stream %s seq %d", info.Config.Name, seq)
			}
			scanned++
		}
	}
	require.NoError(t, streams.Err())
	require.Positive(t, scanned)

	// The upstream saw salvo's request, never a gateway key.
	calls := e.mock.Received(batchfile.RequestID(done.ID, 1))
	require.NotEmpty(t, calls, "line 1 reached the upstream")
	for _, c := range calls {
		flat := string(c.Body)
		for k, v := range c.Header {
			flat += k + strings.Join(v, ",")
		}
		for _, s := range secrets {
			require.NotContains(t, flat, s)
		}
	}
}

// TestAuthRefusesAMissingOrUnknownKeyWithOpenAIsEnvelope: without a key,
// or with a key the gateway does not know, every call answers 401 in
// OpenAI's error envelope: type invalid_request_error, and for an unknown
// key code invalid_api_key, as api.openai.com answers.
func TestAuthRefusesAMissingOrUnknownKeyWithOpenAIsEnvelope(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := context.Background()

	for name, key := range map[string]string{"no key": "", "unknown key": "sk-unknown"} {
		c := e.client(t, key)
		_, err := c.Batches.List(ctx, openai.BatchListParams{})
		ae := apiError(t, err, http.StatusUnauthorized)
		require.Equal(t, "invalid_request_error", ae.Type, "%s: %s", name, ae.RawJSON())
		if key != "" {
			require.Equal(t, "invalid_api_key", ae.Code, "%s: %s", name, ae.RawJSON())
		}
		_, err = c.Files.Get(ctx, "file-abc")
		apiError(t, err, http.StatusUnauthorized)
	}
}

// TestErrorEnvelopeNamesTheParam: a refused call answers OpenAI's
// envelope {"error":{"message","type","param","code"}} with every field
// present, param naming the field at fault.
func TestErrorEnvelopeNamesTheParam(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := context.Background()
	f := upload(t, e.a, "a.jsonl", chatLine("a-1", modelOK, "hi"))

	_, err := e.a.Batches.New(ctx, openai.BatchNewParams{InputFileID: f.ID,
		Endpoint: openai.BatchNewParamsEndpointV1ChatCompletions, CompletionWindow: "2h"})
	ae := apiError(t, err, http.StatusBadRequest)
	require.Equal(t, "invalid_request_error", ae.Type)
	require.Equal(t, "completion_window", ae.Param)
	require.Contains(t, ae.Message, "2h")
	require.NotEmpty(t, ae.JSON.Code.Raw(), "code is present (null when there is none): %s", ae.RawJSON())
	for _, field := range []string{`"message"`, `"type"`, `"param"`, `"code"`} {
		require.Contains(t, ae.RawJSON(), field)
	}

	_, err = e.a.Batches.New(ctx, openai.BatchNewParams{InputFileID: f.ID,
		Endpoint: "/v1/images/generations", CompletionWindow: openai.BatchNewParamsCompletionWindow24h})
	require.Equal(t, "endpoint", apiError(t, err, http.StatusBadRequest).Param)

	_, err = e.a.Batches.New(ctx, openai.BatchNewParams{InputFileID: "file-nope",
		Endpoint: openai.BatchNewParamsEndpointV1ChatCompletions, CompletionWindow: openai.BatchNewParamsCompletionWindow24h})
	ae = apiError(t, err, http.StatusNotFound)
	require.Equal(t, "input_file_id", ae.Param)
	require.Equal(t, "invalid_request_error", ae.Type, "OpenAI's 404s are invalid_request_error: %s", ae.RawJSON())

	_, err = e.a.Batches.Get(ctx, "batch_nope")
	ae = apiError(t, err, http.StatusNotFound)
	require.Equal(t, "invalid_request_error", ae.Type, ae.RawJSON())

	_, err = e.a.Files.New(ctx, openai.FileNewParams{File: openai.File(strings.NewReader("{}\n"), "x.jsonl", "application/jsonl"),
		Purpose: openai.FilePurposeFineTune})
	require.Equal(t, "purpose", apiError(t, err, http.StatusBadRequest).Param)

	_, err = e.a.Batches.List(ctx, openai.BatchListParams{Limit: openai.Int(1000)})
	require.Equal(t, "limit", apiError(t, err, http.StatusBadRequest).Param)
}
