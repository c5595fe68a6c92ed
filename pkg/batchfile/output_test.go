package batchfile_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/salvo-run/salvo/pkg/batchfile"
	"github.com/salvo-run/salvo/pkg/lifecycle"
)

func TestWriteOutputSplitsAndOrdersByInputLine(t *testing.T) {
	in := strings.Join([]string{
		good("ok-1"),
		good("failed"),
		`{"custom_id":"bad","method":"POST","url":"/v1/x","body":{}}`,
		good("ok-2"),
		good("no-result"),
		good("canceled"),
	}, "\n")
	p := parse(t, in)
	require.Len(t, p.Requests, 5)
	id := func(line int) string { return batchfile.RequestID("b1", line) }
	results := map[string]*lifecycle.Result{
		id(1): {ID: id(1), CustomID: "ok-1", State: lifecycle.StateCompleted,
			Response: &lifecycle.ResultResponse{StatusCode: 200, RequestID: id(1), Body: json.RawMessage(`{"object":"chat.completion","n":1}`)}},
		id(2): {ID: id(2), CustomID: "failed", State: lifecycle.StateFailed,
			Response: &lifecycle.ResultResponse{StatusCode: 400, RequestID: id(2), Body: json.RawMessage(`{"error":{"message":"bad <input>"}}`)},
			Error:    &lifecycle.ResultError{Code: lifecycle.CodeNonRetriableStatus, Message: "upstream answered 400"}},
		id(4): {ID: id(4), CustomID: "ok-2", State: lifecycle.StateCompleted,
			Response: &lifecycle.ResultResponse{StatusCode: 200, RequestID: id(4), Body: json.RawMessage(`{"object":"chat.completion","n":4}`)}},
		id(6): {ID: id(6), CustomID: "canceled", State: lifecycle.StateCanceled},
	}
	var out, errs bytes.Buffer
	w, err := batchfile.WriteOutput(&out, &errs, p, results)
	require.NoError(t, err)
	require.Equal(t, batchfile.Written{Output: 2, Errors: 4}, w)

	outLines, err := batchfile.ReadOutput(&out)
	require.NoError(t, err)
	require.Equal(t, []batchfile.OutputLine{
		{ID: id(1), CustomID: "ok-1", Response: &batchfile.Response{StatusCode: http.StatusOK, RequestID: id(1), Body: json.RawMessage(`{"object":"chat.completion","n":1}`)}},
		{ID: id(4), CustomID: "ok-2", Response: &batchfile.Response{StatusCode: http.StatusOK, RequestID: id(4), Body: json.RawMessage(`{"object":"chat.completion","n":4}`)}},
	}, outLines)

	errText := errs.String()
	require.Contains(t, errText, `bad <input>`, "HTML is not escaped")
	errLines, err := batchfile.ReadOutput(strings.NewReader(errText))
	require.NoError(t, err)
	require.Len(t, errLines, 4)
	// Line 2: failed with the upstream's answer kept.
	require.Equal(t, "failed", errLines[0].CustomID)
	require.Equal(t, 400, errLines[0].Response.StatusCode)
	require.Equal(t, string(lifecycle.CodeNonRetriableStatus), errLines[0].Error.Code)
	// Line 3: the input line error, with its line number and field.
	require.Equal(t, batchfile.OutputLine{CustomID: "bad", Error: &batchfile.OutputError{
		Code: batchfile.CodeInvalidRequest, Message: "line 3: body.model: is required", Line: 3, Param: "body.model",
	}}, errLines[1])
	// Line 5: never got a result.
	require.Equal(t, id(5), errLines[2].ID)
	require.Equal(t, batchfile.CodeMissingResult, errLines[2].Error.Code)
	// Line 6: canceled without a failure recorded.
	require.Equal(t, "canceled", errLines[3].Error.Code)
	require.Nil(t, errLines[3].Response)
}

// Every line carries the OpenAI keys, "error": null and "response": null
// included, so clients reading the OpenAI shape find them.
func TestWriteOutputShape(t *testing.T) {
	p := parse(t, good("a")+"\n{")
	res := map[string]*lifecycle.Result{batchfile.RequestID("b1", 1): {
		ID: batchfile.RequestID("b1", 1), State: lifecycle.StateCompleted,
		Response: &lifecycle.ResultResponse{StatusCode: 200, RequestID: "b1-1", Body: json.RawMessage(`{"x":1}`)},
	}}
	var out, errs bytes.Buffer
	_, err := batchfile.WriteOutput(&out, &errs, p, res)
	require.NoError(t, err)
	require.JSONEq(t, `{"id":"b1-1","custom_id":"a","response":{"status_code":200,"request_id":"b1-1","body":{"x":1}},"error":null}`, out.String())
	require.JSONEq(t, `{"custom_id":"","response":null,"error":{"code":"invalid_json_line","message":"line 2: invalid JSON: unexpected end of JSON input","line":2}}`, errs.String())
}

func TestReadOutputRejectsForeignLines(t *testing.T) {
	_, err := batchfile.ReadOutput(strings.NewReader("{\"id\":\"a\",\"custom_id\":\"a\",\"response\":null,\"error\":null}\n{\"surprise\":1}\n"))
	require.ErrorContains(t, err, "line 2")
}
