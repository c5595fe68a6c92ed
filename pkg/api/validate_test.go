package api_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/salvo-run/salvo/pkg/api"
)

// TestInvalidArgumentsNameTheField: every refused body answers
// invalid_argument with a message starting with the field as the client
// wrote it, before the store is asked anything; the JSON Schema refuses
// the same bodies (schema: false marks what a schema cannot see).
func TestInvalidArgumentsNameTheField(t *testing.T) {
	t.Parallel()
	b := setup(t, api.Config{})
	pairs := make([]string, 17)
	for i := range pairs {
		pairs[i] = fmt.Sprintf(`"k%d":"v"`, i)
	}
	tests := []struct {
		endpoint, body, want string
		// noSchema: the schema cannot tell (a body that is no JSON, a
		// duration's syntax, a size).
		noSchema bool
	}{
		{api.EndpointBatchCreate, `{"foo":1}`, "foo: unknown field", false},
		{api.EndpointBatchCreate, `{"ID":"b1"}`, "ID: unknown field", false},
		{api.EndpointBatchCreate, `{"id":"a b"}`, `id: "a b" must be printable ASCII without spaces`, false},
		{api.EndpointBatchCreate, `{"id":"{b}"}`, `id: "{b}" must not contain '{' or '}'`, false},
		{api.EndpointBatchCreate, `{"id":"malformed-1"}`, `id: "malformed-1": ids starting with`, false},
		{api.EndpointBatchCreate, `{"completion_window":"2x"}`, `completion_window: "2x" is not a duration`, true},
		{api.EndpointBatchCreate, `{"completion_window":"-1h"}`, `completion_window: "-1h" must be positive`, true},
		{api.EndpointBatchCreate, `{"completion_window":"200h"}`, `completion_window: "200h" exceeds the maximum`, true},
		{api.EndpointBatchCreate, `{"completion_window":24}`, "completion_window: must be a string, not number", false},
		{api.EndpointBatchCreate, `{"endpoint":"https://x/v1"}`, `endpoint: "https://x/v1" must be a path`, false},
		{api.EndpointBatchCreate, `{"endpoint":"/v1/../admin"}`, `endpoint: "/v1/../admin" must not contain`, false},
		{api.EndpointBatchCreate, `{"metadata":{` + strings.Join(pairs, ",") + `}}`, "metadata: 17 pairs, at most 16", false},
		{api.EndpointBatchCreate, `{"metadata":{"` + strings.Repeat("k", 65) + `":"v"}}`, `metadata: key "kkkk`, false},
		{api.EndpointBatchCreate, `{"metadata":{"":"v"}}`, "metadata: keys must not be empty", false},
		{api.EndpointBatchCreate, `{"metadata":{"k":"` + strings.Repeat("v", 513) + `"}}`, "metadata.k: 513 bytes, at most 512", false},
		{api.EndpointBatchCreate, `{"metadata":{"k":1}}`, "metadata: values must be strings, not number", false},
		{api.EndpointBatchCreate, `{"total":-1}`, "total: -1 must be at least 0", false},
		{api.EndpointBatchCreate, `{"total":"3"}`, "total: must be an integer, not string", false},
		{api.EndpointBatchCreate, `{"total":1.5}`, "total: must be an integer, not number 1.5", false},
		{api.EndpointBatchCreate, `[]`, "body: must be a JSON object, not array", false},
		{api.EndpointBatchCreate, `{"id":`, "body: JSON ends early", true},
		{api.EndpointBatchCreate, `{"id" "b1"}`, "body: not valid JSON", true},
		{api.EndpointBatchCreate, `{"id":"b1"}x`, "body: data after the JSON object", true},
		{api.EndpointBatchCreate, `{} {}`, "body: data after the JSON object", true},
		{api.EndpointBatchCreate, `{"id":"` + strings.Repeat("x", 70_000) + `"}`, "body: 70009 bytes, at most 65536", true},
		{api.EndpointBatchSeal, `{"id":"b1"}`, "total: 0 must be at least 1", false},
		{api.EndpointBatchSeal, `{"total":2}`, "id: is required", false},
		{api.EndpointBatchGet, `{}`, "id: is required", false},
		{api.EndpointBatchGet, `{"id":"b1","batch_id":"b1"}`, "batch_id: unknown field", false},
		{api.EndpointBatchCancel, `{"id":""}`, "id: is required", false},
		{api.EndpointBatchList, `{"limit":0}`, "limit: 0 must be 1 to 100", false},
		{api.EndpointBatchList, `{"limit":101}`, "limit: 101 must be 1 to 100", false},
		{api.EndpointBatchList, `{"status":"done"}`, `status: "done" is not one of validating, in_progress`, false},
		{api.EndpointBatchList, `{"after":"a b"}`, `after: "a b" must be printable`, false},
		{api.EndpointBatchList, `{"metadata":{"` + strings.Repeat("k", 65) + `":"v"}}`, "metadata: key", false},
		{api.EndpointRequestGet, `{"batch_id":"b1"}`, "id: is required", false},
		{api.EndpointRequestGet, `{"id":"r1","batch_id":"b 1"}`, `batch_id: "b 1" must be printable`, false},
		{api.EndpointRequestCancel, `{"id":"r1","model":"m"}`, "model: unknown field", false},
	}
	for _, tt := range tests {
		code, msg := b.fail(t, tt.endpoint, tt.body)
		label := tt.endpoint + " " + tt.body
		if len(label) > 80 {
			label = label[:80]
		}
		require.Equal(t, api.CodeInvalidArgument, code, label)
		require.True(t, strings.HasPrefix(msg, tt.want), "%s: got %q, want it to start with %q", label, msg, tt.want)
		if !tt.noSchema {
			require.Error(t, b.schemas.check(t, tt.endpoint+".request", []byte(tt.body)), "schema accepts %s", label)
		}
	}
	require.Empty(t, b.backend.Calls(), "nothing invalid reaches the store")
}
