package lifecycle_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/salvo-run/salvo/pkg/lifecycle"
)

func validRequest() lifecycle.Request {
	return lifecycle.Request{
		V:         lifecycle.WireVersion,
		ID:        "req-0001",
		BatchID:   "batch_abc",
		CustomID:  "row-1",
		Model:     "meta-llama/Llama-3.1-8B",
		Method:    "POST",
		URL:       "/v1/chat/completions",
		Body:      json.RawMessage(`{"model":"meta-llama/Llama-3.1-8B","messages":[]}`),
		ExpiresAt: t0.Add(24 * time.Hour),
		Metadata:  map[string]string{"team": "search", "Cost-Center": "42"},
	}
}

// requestAccepts are valid variations of validRequest; schema_test checks
// that the JSON Schema accepts them too.
var requestAccepts = []struct {
	name   string
	mutate func(r *lifecycle.Request)
}{
	{"full", func(*lifecycle.Request) {}},
	{"batchless", func(r *lifecycle.Request) { r.BatchID = "" }},
	{"in a batch without expires_at", func(r *lifecycle.Request) { r.ExpiresAt = time.Time{} }},
	{"no body", func(r *lifecycle.Request) { r.Body = nil; r.Method = "GET"; r.URL = "/v1/models" }},
	{"body with spaces", func(r *lifecycle.Request) { r.Body = json.RawMessage(" {} ") }},
	{"no custom id", func(r *lifecycle.Request) { r.CustomID = "" }},
	{"no metadata", func(r *lifecycle.Request) { r.Metadata = nil }},
	{"result subject", func(r *lifecycle.Request) { r.ResultSubject = "app.results.job-7" }},
	{"query string", func(r *lifecycle.Request) { r.URL = "/v1/files?purpose=batch" }},
	{"dots inside a segment", func(r *lifecycle.Request) { r.URL = "/v1/models/gpt-4.1..x" }},
	{"max id", func(r *lifecycle.Request) { r.ID = strings.Repeat("a", lifecycle.MaxIDLength) }},
	{"max custom id", func(r *lifecycle.Request) { r.CustomID = strings.Repeat("é", lifecycle.MaxCustomIDLength/2) }},
	{"every method", func(r *lifecycle.Request) { r.Method = "PATCH" }},
	{"max metadata", func(r *lifecycle.Request) {
		r.Metadata = map[string]string{}
		for i := 0; i < lifecycle.MaxMetadataPairs; i++ {
			r.Metadata[strings.Repeat("k", i+1)] = strings.Repeat("v", lifecycle.MaxMetadataValue)
		}
	}},
}

func TestRequestValidateAccepts(t *testing.T) {
	for _, tt := range requestAccepts {
		t.Run(tt.name, func(t *testing.T) {
			r := validRequest()
			tt.mutate(&r)
			require.NoError(t, r.Validate())
		})
	}
}

// requestRejects are invalid variations of validRequest and the field the
// error must name; schema_test checks that the JSON Schema rejects them too.
var requestRejects = []struct {
	field  string
	mutate func(r *lifecycle.Request)
}{
	{"v", func(r *lifecycle.Request) { r.V = 0 }},
	{"v", func(r *lifecycle.Request) { r.V = 2 }},
	{"id", func(r *lifecycle.Request) { r.ID = "" }},
	{"id", func(r *lifecycle.Request) { r.ID = "has space" }},
	{"id", func(r *lifecycle.Request) { r.ID = "tab\tid" }},
	{"id", func(r *lifecycle.Request) { r.ID = "nl\nid" }},
	{"id", func(r *lifecycle.Request) { r.ID = "ünï" }},
	{"id", func(r *lifecycle.Request) { r.ID = strings.Repeat("a", lifecycle.MaxIDLength+1) }},
	{"id", func(r *lifecycle.Request) { r.ID = "}lead" }},
	{"id", func(r *lifecycle.Request) { r.ID = lifecycle.MalformedID(7) }},
	{"batch_id", func(r *lifecycle.Request) { r.BatchID = "a b" }},
	{"batch_id", func(r *lifecycle.Request) { r.BatchID = "}lead" }},
	{"batch_id", func(r *lifecycle.Request) { r.BatchID = "x{tag}" }},
	{"batch_id", func(r *lifecycle.Request) { r.BatchID = strings.Repeat("b", lifecycle.MaxIDLength+1) }},
	{"custom_id", func(r *lifecycle.Request) { r.CustomID = strings.Repeat("c", lifecycle.MaxCustomIDLength+1) }},
	{"custom_id", func(r *lifecycle.Request) { r.CustomID = "line\nbreak" }},
	{"custom_id", func(r *lifecycle.Request) { r.CustomID = "nul\x00" }},
	{"model", func(r *lifecycle.Request) { r.Model = "" }},
	{"model", func(r *lifecycle.Request) { r.Model = "  " }},
	{"model", func(r *lifecycle.Request) { r.Model = strings.Repeat("m", lifecycle.MaxIDLength+1) }},
	{"method", func(r *lifecycle.Request) { r.Method = "" }},
	{"method", func(r *lifecycle.Request) { r.Method = "post" }},
	{"method", func(r *lifecycle.Request) { r.Method = "CONNECT" }},
	{"url", func(r *lifecycle.Request) { r.URL = "" }},
	{"url", func(r *lifecycle.Request) { r.URL = "https://evil.example/v1" }},
	{"body", func(r *lifecycle.Request) { r.Body = json.RawMessage(`[1,2]`) }},
	{"body", func(r *lifecycle.Request) { r.Body = json.RawMessage(`"text"`) }},
	{"body", func(r *lifecycle.Request) { r.Body = json.RawMessage(`null`) }},
	{"body", func(r *lifecycle.Request) { r.Body = json.RawMessage(`{"a":`) }},
	{"body", func(r *lifecycle.Request) { r.Body = json.RawMessage(`   `) }},
	{"expires_at", func(r *lifecycle.Request) { r.ExpiresAt = time.Time{}; r.BatchID = "" }},
	{"result_subject", func(r *lifecycle.Request) { r.ResultSubject = "app.results.*" }},
	{"result_subject", func(r *lifecycle.Request) { r.ResultSubject = "app.>" }},
	{"result_subject", func(r *lifecycle.Request) { r.ResultSubject = "app..results" }},
	{"result_subject", func(r *lifecycle.Request) { r.ResultSubject = ".app" }},
	{"result_subject", func(r *lifecycle.Request) { r.ResultSubject = "app." }},
	{"result_subject", func(r *lifecycle.Request) { r.ResultSubject = "app results" }},
	{"result_subject", func(r *lifecycle.Request) { r.ResultSubject = "app\r\nPUB x" }},
	{"result_subject", func(r *lifecycle.Request) { r.ResultSubject = strings.Repeat("s", lifecycle.MaxSubjectLength+1) }},
	{"metadata", func(r *lifecycle.Request) {
		r.Metadata = map[string]string{}
		for i := 0; i <= lifecycle.MaxMetadataPairs; i++ {
			r.Metadata[strings.Repeat("k", i+1)] = "v"
		}
	}},
	{"metadata", func(r *lifecycle.Request) { r.Metadata = map[string]string{"": "v"} }},
	{"metadata", func(r *lifecycle.Request) { r.Metadata = map[string]string{"bad key": "v"} }},
	{"metadata", func(r *lifecycle.Request) { r.Metadata = map[string]string{"a.b": "v"} }},
	{"metadata", func(r *lifecycle.Request) {
		r.Metadata = map[string]string{strings.Repeat("k", lifecycle.MaxMetadataKey+1): "v"}
	}},
	{"metadata.team", func(r *lifecycle.Request) { r.Metadata = map[string]string{"team": "a\r\nInjected: 1"} }},
	{"metadata.team", func(r *lifecycle.Request) {
		r.Metadata = map[string]string{"team": strings.Repeat("v", lifecycle.MaxMetadataValue+1)}
	}},
	{"metadata.team", func(r *lifecycle.Request) { r.Metadata = map[string]string{"team": "ünïcode"} }},
}

func TestRequestValidateNamesField(t *testing.T) {
	for _, tt := range requestRejects {
		r := validRequest()
		tt.mutate(&r)
		err := r.Validate()
		require.Error(t, err, "field %s", tt.field)
		var fe *lifecycle.FieldError
		require.True(t, errors.As(err, &fe), "%v is not a *FieldError", err)
		require.Equal(t, tt.field, fe.Field, "%v", err)
		require.True(t, strings.HasPrefix(err.Error(), tt.field+": "), err.Error())
	}
}

// pathsOK and pathsBad feed TestValidatePath and the schema agreement test.
var pathsOK = []string{
	"/", "/v1/chat/completions", "/v1/embeddings", "/v1/models/gpt-4o",
	"/v1/files?purpose=batch&x=1", "/v1/a#frag", "/v1/a.b/c..d/...", "/v1/%20x",
	"/v1%2fmodels", "/v1/x?q=/../y", "/v1/%C3%A9",
}

var pathsBad = []string{
	"",
	"v1/chat/completions",
	"https://evil.example/v1",
	"http://127.0.0.1/",
	"//evil.example/v1",
	"///v1",
	"/v1/../admin",
	"/..",
	"/v1/./x",
	"/v1/..?x=1",
	"/v1/%2e%2e/admin",
	"/v1/%2E%2E/admin",
	"/v1/.%2e/admin",
	"/v1/%2e./admin",
	"/v1/%2e/admin",
	"/v1%2f..%2fadmin",
	"/v1/%2F..%2Fadmin",
	"/v1\\..\\admin",
	"/\\evil.example",
	"/v1/%5c../admin",
	"/v1/x?redirect=http://evil",
	"/v1/a b",
	"/v1/a\tb",
	"/v1/a\r\nHost: evil",
	"/v1/a\x00",
	"/v1/a\x01",
	"/v1/a\x7f",
	"/v1/%00",
	"/v1/%zz",
	"/v1/ünï",
}

func TestValidatePath(t *testing.T) {
	for _, p := range pathsOK {
		require.NoError(t, lifecycle.ValidatePath(p), p)
	}
	for _, p := range pathsBad {
		err := lifecycle.ValidatePath(p)
		require.Error(t, err, "%q", p)
		var fe *lifecycle.FieldError
		require.True(t, errors.As(err, &fe))
		require.Equal(t, "url", fe.Field)
	}
}

// The body's model, when the body names one, must be the envelope's: the
// envelope's model routes, limits and bills the request. The JSON Schema
// cannot compare two fields, so these cases are not in requestRejects.
func TestRequestBodyModelMustMatchTheEnvelope(t *testing.T) {
	accepts := map[string]string{
		"same model":    `{"model":"meta-llama/Llama-3.1-8B","messages":[]}`,
		"no body model": `{"messages":[]}`,
		"empty body":    `{}`,
		"model nested":  `{"messages":[{"model":"other"}]}`,
	}
	for name, body := range accepts {
		r := validRequest()
		r.Body = json.RawMessage(body)
		require.NoError(t, r.Validate(), name)
	}
	rejects := map[string]string{
		"other model":     `{"model":"gpt-4o","messages":[]}`,
		"case differs":    `{"model":"meta-llama/llama-3.1-8b"}`,
		"padded":          `{"model":" meta-llama/Llama-3.1-8B"}`,
		"not a string":    `{"model":42}`,
		"null":            `{"model":null}`,
		"empty":           `{"model":""}`,
		"escaped variant": `{"model":"meta-llama\/Llama-3.1-9B"}`,
		"later duplicate": `{"model":"meta-llama/Llama-3.1-8B","model":"gpt-4o"}`,
	}
	for name, body := range rejects {
		r := validRequest()
		r.Body = json.RawMessage(body)
		err := r.Validate()
		require.Error(t, err, name)
		var fe *lifecycle.FieldError
		require.True(t, errors.As(err, &fe), "%s: %v is not a *FieldError", name, err)
		require.Equal(t, "body.model", fe.Field, name)
		require.Contains(t, err.Error(), `"meta-llama/Llama-3.1-8B"`, "%s: the error names the envelope's model", name)
	}
	r := validRequest()
	r.Body = json.RawMessage(rejects["other model"])
	require.EqualError(t, r.Validate(),
		`body.model: "gpt-4o" differs from model "meta-llama/Llama-3.1-8B"; the envelope's model routes and bills the request, so both must name the same model`)
	// An escaped spelling of the same name is the same model.
	r.Body = json.RawMessage(`{"model":"meta-llama\/Llama-3.1-8B"}`)
	require.NoError(t, r.Validate())
}

func TestMalformedIDIsReserved(t *testing.T) {
	require.Equal(t, "malformed-42", lifecycle.MalformedID(42))
	r := validRequest()
	r.ID = "malformed-x"
	var fe *lifecycle.FieldError
	require.True(t, errors.As(r.Validate(), &fe))
	require.Equal(t, "id", fe.Field)
	require.True(t, lifecycle.ReservedID("malformed-x"))
	require.False(t, lifecycle.ReservedID("req-malformed-x"))
}

func TestDecodeRequest(t *testing.T) {
	good := `{"v":1,"id":"req-1","model":"gpt-4o","method":"POST","url":"/v1/chat/completions",` +
		`"body":{"messages":[]},"expires_at":"2025-06-02T12:00:00Z"}`
	r, err := lifecycle.DecodeRequest([]byte(good))
	require.NoError(t, err)
	require.Equal(t, "req-1", r.ID)
	require.Equal(t, lifecycle.Ref{ID: "req-1"}, r.Ref())
	require.JSONEq(t, `{"messages":[]}`, string(r.Body))
	require.False(t, r.Stream())

	stream := strings.Replace(good, `"messages":[]`, `"messages":[],"stream":true`, 1)
	r, err = lifecycle.DecodeRequest([]byte(stream))
	require.NoError(t, err)
	require.True(t, r.Stream())

	// The key spelled with an escape still asks for a stream; the word in a
	// prompt does not.
	escaped := strings.Replace(good, `"messages":[]`, `"messages":[],"str\u0065am":true`, 1)
	r, err = lifecycle.DecodeRequest([]byte(escaped))
	require.NoError(t, err)
	require.True(t, r.Stream())
	prompt := strings.Replace(good, `"messages":[]`, `"messages":[{"role":"user","content":"stream it"}]`, 1)
	r, err = lifecycle.DecodeRequest([]byte(prompt))
	require.NoError(t, err)
	require.False(t, r.Stream())

	tests := []struct {
		name, data, field string
	}{
		{"unknown field", strings.Replace(good, `"v":1`, `"v":1,"api_key":"sk-x"`, 1), ""},
		{"not json", `{"v":1,`, ""},
		{"trailing data", good + `{"v":1}`, ""},
		{"trailing garbage", good + ` x`, ""},
		{"wrong type", strings.Replace(good, `"v":1`, `"v":"1"`, 1), ""},
		{"bad time", strings.Replace(good, `2025-06-02T12:00:00Z`, `tomorrow`, 1), ""},
		{"missing expires_at", strings.Replace(good, `,"expires_at":"2025-06-02T12:00:00Z"`, ``, 1), "expires_at"},
		{"missing v", strings.Replace(good, `"v":1,`, ``, 1), "v"},
		{"bad url", strings.Replace(good, `/v1/chat/completions`, `/v1/../x`, 1), "url"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := lifecycle.DecodeRequest([]byte(tt.data))
			require.Error(t, err)
			require.Contains(t, err.Error(), "lifecycle:")
			var fe *lifecycle.FieldError
			if tt.field != "" {
				require.True(t, errors.As(err, &fe), "%v", err)
				require.Equal(t, tt.field, fe.Field)
			}
		})
	}
	// Trailing whitespace is fine.
	_, err = lifecycle.DecodeRequest([]byte(good + "\n"))
	require.NoError(t, err)
}

func TestRequestJSONRoundTrip(t *testing.T) {
	r := validRequest()
	r.ResultSubject = "app.results"
	data, err := json.Marshal(&r)
	require.NoError(t, err)
	back, err := lifecycle.DecodeRequest(data)
	require.NoError(t, err)
	require.Equal(t, r.ID, back.ID)
	require.True(t, r.ExpiresAt.Equal(back.ExpiresAt))
	require.Equal(t, r.Metadata, back.Metadata)
	require.JSONEq(t, string(r.Body), string(back.Body))
}
