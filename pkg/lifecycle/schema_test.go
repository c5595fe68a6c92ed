package lifecycle_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/stretchr/testify/require"

	"github.com/salvo-run/salvo/pkg/lifecycle"
)

// The wire contract's files, relative to this package.
const (
	schemaDir   = "../../docs/schema"
	examplesDir = "../../docs/examples"
)

// schemas compiles the request and result schemas with format assertions on
// (date-time is checked, not just annotated).
func schemas(t *testing.T) (request, result *jsonschema.Schema) {
	t.Helper()
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	compile := func(name string) *jsonschema.Schema {
		f, err := os.Open(filepath.Join(schemaDir, name))
		require.NoError(t, err)
		defer func() { _ = f.Close() }()
		doc, err := jsonschema.UnmarshalJSON(f)
		require.NoError(t, err)
		require.NoError(t, c.AddResource(name, doc))
		s, err := c.Compile(name)
		require.NoError(t, err, name)
		return s
	}
	return compile("request.schema.json"), compile("result.schema.json")
}

func instance(t *testing.T, data []byte) any {
	t.Helper()
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	require.NoError(t, err)
	return v
}

// TestExamplesValidate checks every example message against its schema and
// round-trips it through the Go types without losing or adding a field.
func TestExamplesValidate(t *testing.T) {
	reqSchema, resSchema := schemas(t)
	files, err := filepath.Glob(filepath.Join(examplesDir, "*.json"))
	require.NoError(t, err)
	var nReq, nRes int
	for _, file := range files {
		name := filepath.Base(file)
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(file)
			require.NoError(t, err)
			switch {
			case strings.HasPrefix(name, "request-"):
				nReq++
				require.NoError(t, reqSchema.Validate(instance(t, data)))
				r, err := lifecycle.DecodeRequest(data)
				require.NoError(t, err)
				out, err := json.Marshal(r)
				require.NoError(t, err)
				require.JSONEq(t, string(data), string(out))
				require.NoError(t, reqSchema.Validate(instance(t, out)))
			case strings.HasPrefix(name, "result-"):
				nRes++
				require.NoError(t, resSchema.Validate(instance(t, data)))
				var r lifecycle.Result
				dec := json.NewDecoder(bytes.NewReader(data))
				dec.DisallowUnknownFields()
				require.NoError(t, dec.Decode(&r))
				require.True(t, r.State.Terminal(), "a result carries a terminal state")
				out, err := json.Marshal(&r)
				require.NoError(t, err)
				require.JSONEq(t, string(data), string(out))
				require.NoError(t, resSchema.Validate(instance(t, out)))
			default:
				t.Fatalf("example %s is neither request-* nor result-*", name)
			}
		})
	}
	require.GreaterOrEqual(t, nReq, 2)
	require.GreaterOrEqual(t, nRes, 3)
}

// TestInvalidExamplesRejected: each deliberately bad example is rejected by
// the schema and by DecodeRequest, both naming the same field.
func TestInvalidExamplesRejected(t *testing.T) {
	reqSchema, _ := schemas(t)
	want := map[string]string{
		"request-url-traversal.json": "url",
		"request-metadata-key.json":  "metadata",
		"request-missing-model.json": "model",
	}
	files, err := filepath.Glob(filepath.Join(examplesDir, "invalid", "*.json"))
	require.NoError(t, err)
	require.Len(t, files, len(want))
	for _, file := range files {
		name := filepath.Base(file)
		field, ok := want[name]
		require.True(t, ok, "no expected field for %s", name)
		data, err := os.ReadFile(file)
		require.NoError(t, err)

		err = reqSchema.Validate(instance(t, data))
		require.Error(t, err, name)
		var verr *jsonschema.ValidationError
		require.True(t, errors.As(err, &verr))
		require.True(t, schemaNames(verr, field), "%s: schema error does not name %q:\n%v", name, field, err)

		_, err = lifecycle.DecodeRequest(data)
		require.Error(t, err, name)
		var fe *lifecycle.FieldError
		require.True(t, errors.As(err, &fe), "%s: %v", name, err)
		require.Equal(t, field, fe.Field, name)
	}
}

// schemaNames reports whether a schema error (or one of its causes) points
// at field: by instance location, by the schema keyword that failed (the
// library reports propertyNames errors at a stale instance location), or as
// a missing required property.
func schemaNames(e *jsonschema.ValidationError, field string) bool {
	if len(e.InstanceLocation) > 0 && e.InstanceLocation[0] == field {
		return true
	}
	if strings.Contains(e.SchemaURL+"/", "/properties/"+field+"/") {
		return true
	}
	if len(e.InstanceLocation) == 0 && strings.Contains(e.Error(), "'"+field+"'") {
		return true
	}
	for _, c := range e.Causes {
		if schemaNames(c, field) {
			return true
		}
	}
	return false
}

// TestRequestSchemaAgreesWithValidate: the schema and Request.Validate give
// the same verdict on every case of the request tables.
func TestRequestSchemaAgreesWithValidate(t *testing.T) {
	reqSchema, _ := schemas(t)
	check := func(r lifecycle.Request, wantOK bool, label string) {
		t.Helper()
		data, err := json.Marshal(&r)
		if err != nil {
			require.False(t, wantOK, "%s: valid request does not marshal: %v", label, err)
			return // not representable as JSON (e.g. a broken raw body)
		}
		require.Equal(t, wantOK, r.Validate() == nil, "%s: Go verdict", label)
		serr := reqSchema.Validate(instance(t, data))
		require.Equal(t, wantOK, serr == nil, "%s: schema verdict for %s: %v", label, data, serr)
	}
	for _, tt := range requestAccepts {
		r := validRequest()
		tt.mutate(&r)
		check(r, true, "accept "+tt.name)
	}
	for _, tt := range requestRejects {
		r := validRequest()
		tt.mutate(&r)
		check(r, false, "reject "+tt.field)
	}
	for _, p := range pathsOK {
		r := validRequest()
		r.URL = p
		check(r, true, "path "+p)
	}
	for _, p := range pathsBad {
		r := validRequest()
		r.URL = p
		check(r, false, "path "+p)
	}
}

// TestPathSchemaAgreesWithValidatePath compares the url pattern of the schema
// with ValidatePath on seeded random paths built from the characters that
// matter (separators, dots, escapes, wildcards of URL syntax).
func TestPathSchemaAgreesWithValidatePath(t *testing.T) {
	reqSchema, _ := schemas(t)
	rng := rand.New(rand.NewSource(7)) //nolint:gosec // deterministic test randomness
	accepted := 0
	alphabet := []string{"/", "/", ".", ".", "%", "2", "e", "E", "f", "F", "5", "c", "0", "1", "7", "a", "?", "#", "\\", " ", ":", "//", "%2e", "%2f", "%5c", "%00"}
	for i := 0; i < 3000; i++ {
		var b strings.Builder
		b.WriteString("/")
		for n := rng.Intn(8); n > 0; n-- {
			b.WriteString(alphabet[rng.Intn(len(alphabet))])
		}
		r := validRequest()
		r.URL = b.String()
		data, err := json.Marshal(&r)
		require.NoError(t, err)
		goOK := lifecycle.ValidatePath(r.URL) == nil
		if goOK {
			accepted++
		}
		schemaErr := reqSchema.Validate(instance(t, data))
		require.Equal(t, goOK, schemaErr == nil, "url %q: Go ok=%t, schema: %v", r.URL, goOK, schemaErr)
	}
	// The generator must exercise both verdicts to prove anything.
	t.Logf("%d of 3000 random paths valid", accepted)
	require.Greater(t, accepted, 300)
	require.Less(t, accepted, 2700)
}
