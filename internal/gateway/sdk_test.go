package gateway_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// outputLine is a line of a batch's output or error file, as OpenAI
// writes it; response.body is parsed into the SDK's types by the tests.
type outputLine struct {
	ID       string `json:"id"`
	CustomID string `json:"custom_id"`
	Response *struct {
		StatusCode int             `json:"status_code"`
		RequestID  string          `json:"request_id"`
		Body       json.RawMessage `json:"body"`
	} `json:"response"`
	Error *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func parseLines(t *testing.T, file string) []outputLine {
	t.Helper()
	var out []outputLine
	for _, l := range lines(file) {
		var v outputLine
		require.NoError(t, json.Unmarshal([]byte(l), &v), l)
		out = append(out, v)
	}
	return out
}

func customIDs(ls []outputLine) []string {
	ids := make([]string, len(ls))
	for i, l := range ls {
		ids[i] = l.CustomID
	}
	return ids
}

// TestSDKRunsABatchToCompletedAndDownloadsItsFiles: with the official Go
// SDK pointed at the gateway, a JSONL file is uploaded, a batch created
// on it and polled to completed; its output file holds the completed
// requests and its error file the failed ones, each in input order and
// every custom_id exactly once; the response bodies parse as the SDK's
// ChatCompletion; request_counts and usage are filled, usage being the
// sum of the completions'.
func TestSDKRunsABatchToCompletedAndDownloadsItsFiles(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := context.Background()

	var in, wantOK, wantBad []string
	for i := 1; i <= 8; i++ {
		id, prompt := fmt.Sprintf("req-%d", i), fmt.Sprintf("question %d", i)
		if i%3 == 0 {
			prompt = refuse
			wantBad = append(wantBad, id)
		} else {
			wantOK = append(wantOK, id)
		}
		in = append(in, chatLine(id, modelOK, prompt))
	}
	f := upload(t, e.a, "input.jsonl", in...)
	got, err := e.a.Files.Get(ctx, f.ID)
	require.NoError(t, err)
	require.Equal(t, f.ID, got.ID)
	require.Equal(t, f.Bytes, got.Bytes)

	created, err := e.a.Batches.New(ctx, openai.BatchNewParams{
		InputFileID:      f.ID,
		Endpoint:         openai.BatchNewParamsEndpointV1ChatCompletions,
		CompletionWindow: openai.BatchNewParamsCompletionWindow24h,
		Metadata:         map[string]string{"team": "search"},
	})
	require.NoError(t, err)
	require.Equal(t, openai.BatchStatusValidating, created.Status)
	require.Equal(t, "batch", string(created.Object))
	require.Equal(t, "search", created.Metadata["team"])
	require.Equal(t, "/v1/chat/completions", created.Endpoint)
	require.Equal(t, "24h", created.CompletionWindow)
	require.NotZero(t, created.CreatedAt)

	b := waitStatus(t, e.a, created.ID, openai.BatchStatusCompleted, 30*time.Second)
	require.Equal(t, int64(len(in)), b.RequestCounts.Total)
	require.Equal(t, int64(len(wantOK)), b.RequestCounts.Completed)
	require.Equal(t, int64(len(wantBad)), b.RequestCounts.Failed)
	require.NotZero(t, b.InProgressAt)
	require.NotZero(t, b.CompletedAt)
	require.GreaterOrEqual(t, b.CompletedAt, b.InProgressAt)
	require.Equal(t, "search", b.Metadata["team"])
	require.NotEmpty(t, b.OutputFileID)
	require.NotEmpty(t, b.ErrorFileID)
	require.Empty(t, b.Errors.Data)

	// The output file: one line per completed request, in input order,
	// each body an SDK ChatCompletion whose usage adds up to the batch's.
	outFile, err := e.a.Files.Get(ctx, b.OutputFileID)
	require.NoError(t, err)
	require.Equal(t, openai.FileObjectPurposeBatchOutput, outFile.Purpose)
	output := parseLines(t, content(t, e.a, b.OutputFileID))
	require.Equal(t, wantOK, customIDs(output), "every completed custom_id once, in input order")
	var in0, out0, total int64
	for _, l := range output {
		require.Nil(t, l.Error, l.CustomID)
		require.NotNil(t, l.Response, l.CustomID)
		require.Equal(t, http.StatusOK, l.Response.StatusCode)
		require.NotEmpty(t, l.ID)
		var cc openai.ChatCompletion
		require.NoError(t, json.Unmarshal(l.Response.Body, &cc))
		require.Equal(t, "chat.completion", string(cc.Object))
		require.Equal(t, modelOK, cc.Model)
		require.NotEmpty(t, cc.Choices)
		require.NotEmpty(t, cc.Choices[0].Message.Content)
		require.Positive(t, cc.Usage.TotalTokens, "the mock reports usage")
		in0 += cc.Usage.PromptTokens
		out0 += cc.Usage.CompletionTokens
		total += cc.Usage.TotalTokens
	}
	require.Positive(t, b.Usage.InputTokens)
	require.Positive(t, b.Usage.OutputTokens)
	require.Equal(t, in0, b.Usage.InputTokens, "usage sums the responses' prompt tokens")
	require.Equal(t, out0, b.Usage.OutputTokens, "usage sums the responses' completion tokens")
	require.Equal(t, total, b.Usage.TotalTokens)

	// The error file: the requests the upstream refused, in input order,
	// each with the upstream's answer (an OpenAI error object).
	errs := parseLines(t, content(t, e.a, b.ErrorFileID))
	require.Equal(t, wantBad, customIDs(errs), "every failed custom_id once, in input order")
	for _, l := range errs {
		require.NotNil(t, l.Response, l.CustomID)
		require.Equal(t, http.StatusBadRequest, l.Response.StatusCode)
		var body struct {
			Error openai.ErrorObject `json:"error"`
		}
		require.NoError(t, json.Unmarshal(l.Response.Body, &body))
		require.Equal(t, "invalid_request_error", body.Error.Type)
		require.NotNil(t, l.Error, "a failed request says why")
	}
	all := append(customIDs(output), customIDs(errs)...)
	slices.Sort(all)
	want := append(append([]string{}, wantOK...), wantBad...)
	slices.Sort(want)
	require.Equal(t, want, all, "every custom_id came back exactly once")
}

// TestSDKInvalidFileEndsFailedWithLineErrors: a file with a line without
// body.model, a duplicate custom_id, a line that is not JSON, a line for
// another endpoint and a line for another model is refused in validation: the batch ends failed, its
// errors.data name each bad line and why, and no request ran.
func TestSDKInvalidFileEndsFailedWithLineErrors(t *testing.T) {
	t.Parallel()
	e := setup(t)

	f := upload(t, e.a, "invalid.jsonl",
		chatLine("ok-1", modelOK, "fine"), // 1
		jsonLine(map[string]any{"custom_id": "no-model", "method": "POST", "url": "/v1/chat/completions", // 2
			"body": map[string]any{"messages": []map[string]string{{"role": "user", "content": "hi"}}}}),
		chatLine("ok-1", modelOK, "again"),   // 3
		`{"custom_id": "broken", "method": `, // 4
		jsonLine(map[string]any{"custom_id": "embed", "method": "POST", "url": "/v1/embeddings", // 5
			"body": map[string]any{"model": "text-embedding-3-small", "input": "hi"}}),
		chatLine("ok-6", modelOK, "fine too"), // 6
		chatLine("other", "gpt-4o", "hi"),     // 7
	)
	created := newBatch(t, e.a, f.ID)

	b := waitStatus(t, e.a, created.ID, openai.BatchStatusFailed, 20*time.Second)
	require.NotZero(t, b.FailedAt)
	require.Empty(t, b.OutputFileID)
	require.Empty(t, b.ErrorFileID)
	require.Zero(t, b.RequestCounts.Total, "a refused file runs no request")
	require.Equal(t, "list", b.Errors.Object)

	type lineErr struct {
		Line  int64
		Code  string
		Param string
	}
	var got []lineErr
	for _, d := range b.Errors.Data {
		require.NotEmpty(t, d.Message, "line %d", d.Line)
		got = append(got, lineErr{d.Line, d.Code, d.Param})
	}
	require.Equal(t, []lineErr{
		{2, "invalid_request", "body.model"},
		{3, "duplicate_custom_id", "custom_id"},
		{4, "invalid_json_line", ""},
		{5, "url_mismatch", "url"},
		{7, "model_mismatch", "body.model"},
	}, got)
	require.Zero(t, e.mock.Calls(), "no request of a refused file reaches the upstream")
}

// TestSDKEmptyFileEndsFailed: a file without a request fails validation
// with empty_file, which names no line.
func TestSDKEmptyFileEndsFailed(t *testing.T) {
	t.Parallel()
	e := setup(t)
	f := upload(t, e.a, "empty.jsonl", "")
	b := waitStatus(t, e.a, newBatch(t, e.a, f.ID).ID, openai.BatchStatusFailed, 20*time.Second)
	require.Len(t, b.Errors.Data, 1)
	require.Equal(t, "empty_file", b.Errors.Data[0].Code)
	require.False(t, b.Errors.Data[0].JSON.Line.Valid(), "empty_file has line null: %s", b.Errors.RawJSON())
}

// TestSDKCancelsARunningBatch: a batch whose requests are held by a slow
// upstream is cancelled with the SDK; the answer is cancelling (or already
// cancelled) and the batch ends cancelled, its requests in the error
// file, while a second batch of the same tenant completes untouched.
func TestSDKCancelsARunningBatch(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := context.Background()

	slow := newBatch(t, e.a, upload(t, e.a, "slow.jsonl",
		chatLine("s-1", modelSlow, "wait"), chatLine("s-2", modelSlow, "wait"), chatLine("s-3", modelSlow, "wait")).ID)
	fast := newBatch(t, e.a, upload(t, e.a, "fast.jsonl", chatLine("f-1", modelOK, "go")).ID)

	// Running: validated, and the upstream holds its calls.
	waitStatus(t, e.a, slow.ID, openai.BatchStatusInProgress, 20*time.Second)
	require.Eventually(t, func() bool { return e.mock.Concurrent(modelSlow) > 0 }, 20*time.Second, 20*time.Millisecond,
		"the slow batch's calls never reached the upstream")

	c, err := e.a.Batches.Cancel(ctx, slow.ID)
	require.NoError(t, err)
	require.Contains(t, []openai.BatchStatus{openai.BatchStatusCancelling, openai.BatchStatusCancelled}, c.Status)
	require.NotZero(t, c.CancellingAt)

	b := waitStatus(t, e.a, slow.ID, openai.BatchStatusCancelled, 20*time.Second)
	require.NotZero(t, b.CancelledAt)
	require.Zero(t, b.RequestCounts.Completed)
	require.Equal(t, int64(3), b.RequestCounts.Total)
	require.Empty(t, b.OutputFileID, "nothing completed")
	require.NotEmpty(t, b.ErrorFileID, "the cancelled calls have error lines")
	errs := parseLines(t, content(t, e.a, b.ErrorFileID))
	require.NotEmpty(t, errs)
	require.Subset(t, []string{"s-1", "s-2", "s-3"}, customIDs(errs))
	require.True(t, slices.IsSorted(customIDs(errs)), "input order")
	for _, l := range errs {
		require.NotNil(t, l.Error, l.CustomID)
		require.Nil(t, l.Response, "a cancelled call has no response")
	}

	// Cancelling again answers the same batch, still cancelled.
	again, err := e.a.Batches.Cancel(ctx, slow.ID)
	require.NoError(t, err)
	require.Equal(t, openai.BatchStatusCancelled, again.Status)

	done := waitStatus(t, e.a, fast.ID, openai.BatchStatusCompleted, 30*time.Second)
	require.Equal(t, int64(1), done.RequestCounts.Completed)
}

// TestSDKListsBatchesAndFilesPageByPage: the SDK's List pages with limit
// and has_more, and its auto-pager walks every page: each batch and each
// file of the tenant comes back exactly once, newest first.
func TestSDKListsBatchesAndFilesPageByPage(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := context.Background()

	const n = 5
	var files, batches []string
	for i := range n {
		f := upload(t, e.a, fmt.Sprintf("in-%d.jsonl", i), chatLine(fmt.Sprintf("c-%d", i), modelOK, "hi"))
		files = append(files, f.ID)
		batches = append(batches, newBatch(t, e.a, f.ID).ID)
	}
	slices.Reverse(files)
	slices.Reverse(batches)

	page, err := e.a.Batches.List(ctx, openai.BatchListParams{Limit: openai.Int(2)})
	require.NoError(t, err)
	require.Len(t, page.Data, 2)
	require.True(t, page.HasMore)
	var ids []string
	for _, b := range page.Data {
		ids = append(ids, b.ID)
	}
	require.Equal(t, batches[:2], ids, "the first page is the newest batches")

	ids = nil
	iter := e.a.Batches.ListAutoPaging(ctx, openai.BatchListParams{Limit: openai.Int(2)})
	for iter.Next() {
		ids = append(ids, iter.Current().ID)
	}
	require.NoError(t, iter.Err())
	require.Equal(t, batches, ids, "every batch once, newest first")

	fpage, err := e.a.Files.List(ctx, openai.FileListParams{Limit: openai.Int(2), Purpose: openai.String("batch")})
	require.NoError(t, err)
	require.Len(t, fpage.Data, 2)
	require.True(t, fpage.HasMore)

	ids = nil
	fiter := e.a.Files.ListAutoPaging(ctx, openai.FileListParams{Limit: openai.Int(2), Purpose: openai.String("batch")})
	for fiter.Next() {
		ids = append(ids, fiter.Current().ID)
	}
	require.NoError(t, fiter.Err())
	require.Equal(t, files, ids, "every file once, newest first")

	ids = nil
	fiter = e.a.Files.ListAutoPaging(ctx, openai.FileListParams{Limit: openai.Int(3), Order: openai.FileListParamsOrderAsc,
		Purpose: openai.String("batch")})
	for fiter.Next() {
		ids = append(ids, fiter.Current().ID)
	}
	require.NoError(t, fiter.Err())
	slices.Reverse(files)
	require.Equal(t, files, ids, "order=asc: oldest first")
}

// TestSDKListAloneSeesABatchComplete: a client that follows its batches
// with List only (never a Get) sees one reach completed with its output
// file: the files of an ended batch are written whichever call looks.
func TestSDKListAloneSeesABatchComplete(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := context.Background()
	b := newBatch(t, e.a, upload(t, e.a, "in.jsonl", chatLine("c-1", modelOK, "hi")).ID)

	var last openai.Batch
	require.Eventually(t, func() bool {
		page, err := e.a.Batches.List(ctx, openai.BatchListParams{})
		if err != nil || len(page.Data) != 1 {
			return false
		}
		last = page.Data[0]
		return last.Status == openai.BatchStatusCompleted
	}, 20*time.Second, 20*time.Millisecond, "listed batch never completed")
	require.Equal(t, b.ID, last.ID)
	require.NotEmpty(t, last.OutputFileID)
}

// TestSDKCancelDuringValidationEndsCancelled: a batch cancelled as soon as
// it was created, while its file may still be checked and its requests
// published, ends cancelled and stays so.
func TestSDKCancelDuringValidationEndsCancelled(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := context.Background()
	var in []string
	for i := range 2000 {
		in = append(in, chatLine(fmt.Sprintf("c-%d", i), modelSlow, "wait"))
	}
	b := newBatch(t, e.a, upload(t, e.a, "big.jsonl", in...).ID)
	c, err := e.a.Batches.Cancel(ctx, b.ID)
	require.NoError(t, err)
	assert.Contains(t, []openai.BatchStatus{openai.BatchStatusCancelling, openai.BatchStatusCancelled}, c.Status,
		"the cancel's answer: %s", c.RawJSON())
	waitStatus(t, e.a, b.ID, openai.BatchStatusCancelled, 10*time.Second)
}

// TestSDKFileExpiresAfterAndDelete: an upload's expires_after (the SDK
// sends it in bracket form) sets expires_at; a deleted file is gone from
// get, content and list.
func TestSDKFileExpiresAfterAndDelete(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := context.Background()
	f, err := e.a.Files.New(ctx, openai.FileNewParams{
		File:         openai.File(strings.NewReader(chatLine("c-1", modelOK, "hi")+"\n"), "exp.jsonl", "application/jsonl"),
		Purpose:      openai.FilePurposeBatch,
		ExpiresAfter: openai.FileNewParamsExpiresAfter{Seconds: 3600},
	})
	require.NoError(t, err)
	require.Equal(t, f.CreatedAt+3600, f.ExpiresAt)

	d, err := e.a.Files.Delete(ctx, f.ID)
	require.NoError(t, err)
	require.True(t, d.Deleted)
	require.Equal(t, f.ID, d.ID)
	_, err = e.a.Files.Get(ctx, f.ID)
	apiError(t, err, http.StatusNotFound)
	_, err = e.a.Files.Content(ctx, f.ID) //nolint:bodyclose // an error has no body to close
	apiError(t, err, http.StatusNotFound)
	l, err := e.a.Files.List(ctx, openai.FileListParams{})
	require.NoError(t, err)
	require.Empty(t, l.Data)
}
