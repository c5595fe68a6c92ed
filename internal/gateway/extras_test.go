package gateway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/stretchr/testify/require"
)

// rawCall sends one request to the gateway as tenant A, outside the SDK
// (salvo's own endpoints and fields).
func (e *env) rawCall(t *testing.T, method, path string, body any) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		require.NoError(t, err)
		rd = bytes.NewReader(data)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, e.url+path, rd)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+keyA)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, out
}

// TestPartialOutputAndOutputExpiry: GET /v1/batches/{id}/output answers
// the output lines so far (none while every call is held, all once the
// batch ran), and output_expires_after sets the output file's expires_at.
func TestPartialOutputAndOutputExpiry(t *testing.T) {
	t.Parallel()
	e := setup(t)
	defer http.DefaultClient.CloseIdleConnections()

	held := newBatch(t, e.a, upload(t, e.a, "held.jsonl", chatLine("h-1", modelSlow, "wait")).ID)
	waitStatus(t, e.a, held.ID, openai.BatchStatusInProgress, 20*time.Second)
	status, body := e.rawCall(t, http.MethodGet, "/batches/"+held.ID+"/output", nil)
	require.Equal(t, http.StatusOK, status, "%s", body)
	require.Empty(t, body, "no result yet")

	file := upload(t, e.a, "ok.jsonl", chatLine("o-1", modelOK, "one"), chatLine("o-2", modelOK, "two"))
	status, body = e.rawCall(t, http.MethodPost, "/batches", map[string]any{
		"input_file_id": file.ID, "endpoint": "/v1/chat/completions", "completion_window": "24h",
		"output_expires_after": map[string]any{"anchor": "created_at", "seconds": 7200},
	})
	require.Equal(t, http.StatusOK, status, "%s", body)
	var created struct {
		ID string `json:"id"`
	}
	require.NoError(t, json.Unmarshal(body, &created))
	done := waitStatus(t, e.a, created.ID, openai.BatchStatusCompleted, 30*time.Second)
	status, body = e.rawCall(t, http.MethodGet, "/batches/"+created.ID+"/output", nil)
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, []string{"o-1", "o-2"}, customIDs(parseLines(t, string(body))))

	out, err := e.a.Files.Get(context.Background(), done.OutputFileID)
	require.NoError(t, err)
	require.InDelta(t, time.Now().Add(2*time.Hour).Unix(), out.ExpiresAt, 60, "output_expires_after: 7200 s")

	status, body = e.rawCall(t, http.MethodPost, "/batches", map[string]any{
		"input_file_id": file.ID, "endpoint": "/v1/chat/completions", "completion_window": "24h",
		"output_expires_after": map[string]any{"anchor": "created_at", "seconds": 5},
	})
	require.Equal(t, http.StatusBadRequest, status)
	require.Contains(t, string(body), `"param":"output_expires_after"`)
}

// TestCreateBatchBodyErrorsNameTheField: a JSON value of the wrong type
// names its field; a body over the bound answers 413.
func TestCreateBatchBodyErrorsNameTheField(t *testing.T) {
	t.Parallel()
	e := setup(t)
	defer http.DefaultClient.CloseIdleConnections()
	status, body := e.rawCall(t, http.MethodPost, "/batches", map[string]any{"input_file_id": 7})
	require.Equal(t, http.StatusBadRequest, status)
	require.Contains(t, string(body), `"param":"input_file_id"`)

	big := map[string]any{"input_file_id": "f", "metadata": map[string]string{"k": string(bytes.Repeat([]byte("x"), 2<<20))}}
	status, _ = e.rawCall(t, http.MethodPost, "/batches", big)
	require.Equal(t, http.StatusRequestEntityTooLarge, status)
}
