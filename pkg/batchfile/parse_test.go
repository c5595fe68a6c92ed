package batchfile_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/salvo-run/salvo/pkg/batchfile"
	"github.com/salvo-run/salvo/pkg/lifecycle"
)

var created = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func parse(t *testing.T, input string, mod ...func(*batchfile.ParseOptions)) batchfile.Parsed {
	t.Helper()
	o := batchfile.ParseOptions{BatchID: "b1", CreatedAt: created, CompletionWindow: "24h"}
	for _, m := range mod {
		m(&o)
	}
	p, err := batchfile.Parse(strings.NewReader(input), o)
	require.NoError(t, err)
	return p
}

func good(id string) string {
	return `{"custom_id":"` + id + `","method":"POST","url":"/v1/chat/completions","body":{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}}`
}

func TestParseGoodLinesBecomeRequests(t *testing.T) {
	p := parse(t, good("a")+"\n\n   \n"+good("b")+"\r\n"+good("c")) // blank lines, CRLF, no final newline
	require.Empty(t, p.Errors)
	require.Equal(t, 5, p.Lines)
	require.Len(t, p.Requests, 3)
	require.Equal(t, []int{1, 4, 5}, []int{p.Requests[0].Number, p.Requests[1].Number, p.Requests[2].Number})
	r := p.Requests[1].Request
	require.Equal(t, "b1-4", r.ID)
	require.Equal(t, batchfile.RequestID("b1", 4), r.ID)
	require.Equal(t, "b1", r.BatchID)
	require.Equal(t, "b", r.CustomID)
	require.Equal(t, "gpt-4o-mini", r.Model)
	require.Equal(t, "POST", r.Method)
	require.Equal(t, "/v1/chat/completions", r.URL)
	require.Equal(t, created.Add(24*time.Hour), r.ExpiresAt)
	require.Equal(t, created.Add(24*time.Hour), p.ExpiresAt)
	require.JSONEq(t, `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}`, string(r.Body))
	require.NoError(t, r.Validate())
}

func TestParseIDsAreStable(t *testing.T) {
	in := good("a") + "\n" + good("b") + "\n"
	p1, p2 := parse(t, in), parse(t, in)
	for i := range p1.Requests {
		require.Equal(t, p1.Requests[i].Request.ID, p2.Requests[i].Request.ID)
	}
	other := parse(t, in, func(o *batchfile.ParseOptions) { o.BatchID = "b2" })
	require.NotEqual(t, p1.Requests[0].Request.ID, other.Requests[0].Request.ID)
}

func TestParseLineErrors(t *testing.T) {
	tests := []struct {
		name  string
		line  string
		want  string // the whole error message, line 2 (line 1 and 3 are good)
		code  string
		field string
	}{
		{"invalid JSON", `{"custom_id":`, "line 2: invalid JSON: unexpected end of JSON input", batchfile.CodeInvalidJSON, ""},
		{"trailing data", good("x") + ` {}`, "line 2: invalid JSON: invalid character '{' after top-level value", batchfile.CodeInvalidJSON, ""},
		{"array", `[1,2]`, "line 2: must be a JSON object", batchfile.CodeInvalidJSON, ""},
		{"null", `null`, "line 2: must be a JSON object", batchfile.CodeInvalidJSON, ""},
		{"missing custom_id", `{"method":"POST","url":"/v1/chat/completions","body":{"model":"m"}}`, "line 2: custom_id: is required", batchfile.CodeInvalidRequest, "custom_id"},
		{"empty custom_id", `{"custom_id":" ","method":"POST","url":"/v1/x","body":{"model":"m"}}`, "line 2: custom_id: is required", batchfile.CodeInvalidRequest, "custom_id"},
		{"numeric custom_id", `{"custom_id":7,"method":"POST","url":"/v1/x","body":{"model":"m"}}`, "line 2: custom_id: must be a string", batchfile.CodeInvalidRequest, "custom_id"},
		{"missing method", `{"custom_id":"x","url":"/v1/x","body":{"model":"m"}}`, "line 2: method: is required", batchfile.CodeInvalidRequest, "method"},
		{"GET method", `{"custom_id":"x","method":"GET","url":"/v1/x","body":{"model":"m"}}`, `line 2: method: "GET" is not supported (only POST)`, batchfile.CodeInvalidRequest, "method"},
		{"lower-case post", `{"custom_id":"x","method":"post","url":"/v1/x","body":{"model":"m"}}`, `line 2: method: "post" is not supported (only POST)`, batchfile.CodeInvalidRequest, "method"},
		{"missing url", `{"custom_id":"x","method":"POST","body":{"model":"m"}}`, "line 2: url: is required", batchfile.CodeInvalidRequest, "url"},
		{"absolute url", `{"custom_id":"x","method":"POST","url":"https://evil.example/v1/x","body":{"model":"m"}}`, `line 2: url: "https://evil.example/v1/x" must be a path starting with a single '/'`, batchfile.CodeInvalidRequest, "url"},
		{"dot-dot url", `{"custom_id":"x","method":"POST","url":"/v1/../admin","body":{"model":"m"}}`, `line 2: url: "/v1/../admin" must not contain '.' or '..' segments`, batchfile.CodeInvalidRequest, "url"},
		{"missing body", `{"custom_id":"x","method":"POST","url":"/v1/x"}`, "line 2: body: is required", batchfile.CodeInvalidRequest, "body"},
		{"body string", `{"custom_id":"x","method":"POST","url":"/v1/x","body":"hello"}`, "line 2: body: must be a JSON object", batchfile.CodeInvalidRequest, "body"},
		{"body array", `{"custom_id":"x","method":"POST","url":"/v1/x","body":[{"model":"m"}]}`, "line 2: body: must be a JSON object", batchfile.CodeInvalidRequest, "body"},
		{"missing model", `{"custom_id":"x","method":"POST","url":"/v1/x","body":{"messages":[]}}`, "line 2: body.model: is required", batchfile.CodeInvalidRequest, "body.model"},
		{"model not a string", `{"custom_id":"x","method":"POST","url":"/v1/x","body":{"model":4}}`, "line 2: body.model: must be a string", batchfile.CodeInvalidRequest, "body.model"},
		{"unknown field", `{"custom_id":"x","method":"POST","url":"/v1/x","body":{"model":"m"},"extra":1}`, "line 2: extra: unknown field (want custom_id, method, url, body)", batchfile.CodeInvalidRequest, "extra"},
		{"custom_id with newline", `{"custom_id":"a\nb","method":"POST","url":"/v1/x","body":{"model":"m"}}`, "line 2: custom_id: must not contain control characters", batchfile.CodeInvalidRequest, "custom_id"},
		{"duplicate custom_id", good("first"), `line 2: custom_id: "first" duplicates line 1`, batchfile.CodeDuplicateCustomID, "custom_id"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := parse(t, good("first")+"\n"+tc.line+"\n"+good("third")+"\n")
			require.Len(t, p.Requests, 2, "the good lines survive the bad one")
			require.Equal(t, 1, p.Requests[0].Number)
			require.Equal(t, 3, p.Requests[1].Number)
			require.Len(t, p.Errors, 1)
			e := p.Errors[0]
			require.Equal(t, tc.want, e.Error())
			require.Equal(t, 2, e.Line)
			require.Equal(t, tc.code, e.Code)
			require.Equal(t, tc.field, e.Field)
		})
	}
}

func TestParseLineErrorKeepsCustomID(t *testing.T) {
	p := parse(t, `{"custom_id":"r9","method":"POST","url":"/v1/x","body":{}}`)
	require.Len(t, p.Errors, 1)
	require.Equal(t, "line 1: body.model: is required", p.Errors[0].Error())
	require.Equal(t, "r9", p.Errors[0].CustomID)
}

// A bad line does not reserve its custom_id: a later good line may use it.
func TestParseBadLineDoesNotReserveCustomID(t *testing.T) {
	p := parse(t, `{"custom_id":"a","method":"GET","url":"/v1/x","body":{"model":"m"}}`+"\n"+good("a"))
	require.Len(t, p.Errors, 1)
	require.Len(t, p.Requests, 1)
	require.Equal(t, 2, p.Requests[0].Number)
}

// A line over the bound is one line error, read past without holding it in
// memory; the lines around it (also far larger than the read buffer) parse.
func TestParseHugeLinesWithinBound(t *testing.T) {
	const maxLine = 300 << 10
	bigContent := strings.Repeat("x", 200<<10) // over the 64 KiB read buffer, under the bound
	big := `{"custom_id":"big","method":"POST","url":"/v1/chat/completions","body":{"model":"m","messages":[{"role":"user","content":"` + bigContent + `"}]}}`
	tooBig := `{"custom_id":"huge","method":"POST","url":"/v1/x","body":{"model":"m","pad":"` + strings.Repeat("y", 400<<10) + `"}}`
	p := parse(t, big+"\n"+tooBig+"\n"+good("after")+"\n"+tooBig, func(o *batchfile.ParseOptions) { o.MaxLineBytes = maxLine })
	require.Len(t, p.Requests, 2)
	require.Equal(t, "big", p.Requests[0].Request.CustomID)
	require.Len(t, p.Requests[0].Request.Body, len(big)-len(`{"custom_id":"big","method":"POST","url":"/v1/chat/completions","body":`)-1)
	require.Equal(t, 3, p.Requests[1].Number)
	require.Len(t, p.Errors, 2)
	for i, line := range []int{2, 4} {
		require.Equal(t, line, p.Errors[i].Line)
		require.Equal(t, batchfile.CodeLineTooLong, p.Errors[i].Code)
		require.Contains(t, p.Errors[i].Error(), "longer than 307200 bytes")
	}
	require.Equal(t, 4, p.Lines)
}

func TestParseMaxRequests(t *testing.T) {
	p := parse(t, good("a")+"\n"+good("b")+"\n"+good("c")+"\n", func(o *batchfile.ParseOptions) { o.MaxRequests = 2 })
	require.Len(t, p.Requests, 2)
	require.Len(t, p.Errors, 1)
	require.Equal(t, "line 3: the batch already has the maximum of 2 requests", p.Errors[0].Error())
}

func TestParseEmptyInput(t *testing.T) {
	p := parse(t, "")
	require.Empty(t, p.Requests)
	require.Empty(t, p.Errors)
	require.Zero(t, p.Lines)
}

func TestParseOptionsValidate(t *testing.T) {
	tests := []struct {
		name string
		mod  func(*batchfile.ParseOptions)
		want string
	}{
		{"no batch id", func(o *batchfile.ParseOptions) { o.BatchID = "" }, "BatchID is required"},
		{"batch id with space", func(o *batchfile.ParseOptions) { o.BatchID = "a b" }, "BatchID"},
		{"bad window", func(o *batchfile.ParseOptions) { o.CompletionWindow = "soon" }, "CompletionWindow"},
		{"negative line bound", func(o *batchfile.ParseOptions) { o.MaxLineBytes = -1 }, "MaxLineBytes"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := batchfile.ParseOptions{BatchID: "b1"}
			tc.mod(&o)
			_, err := batchfile.Parse(strings.NewReader(good("a")), o)
			require.ErrorIs(t, err, batchfile.ErrInvalidOptions)
			require.ErrorContains(t, err, tc.want)
		})
	}
}

func TestParseDefaultWindow(t *testing.T) {
	p := parse(t, good("a"), func(o *batchfile.ParseOptions) { o.CompletionWindow = "" })
	require.Equal(t, created.Add(lifecycle.CompletionWindowDefault), p.Requests[0].Request.ExpiresAt)
}
