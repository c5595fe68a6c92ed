package api_test

import (
	"bytes"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/stretchr/testify/require"

	"github.com/salvo-run/salvo/pkg/api"
)

const schemaDir = "../../docs/schema"

// apiSchemas holds the compiled definitions of docs/schema/api.schema.json.
type apiSchemas struct {
	defs map[string]*jsonschema.Schema
}

var (
	schemasOnce sync.Once
	schemasVal  *apiSchemas
	schemasErr  error
)

// loadSchemas compiles every definition once per test binary (format
// assertions on, as pkg/lifecycle's schema tests do).
func loadSchemas(t *testing.T) *apiSchemas {
	t.Helper()
	schemasOnce.Do(func() { schemasVal, schemasErr = compileSchemas() })
	require.NoError(t, schemasErr)
	return schemasVal
}

func compileSchemas() (*apiSchemas, error) {
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	for _, name := range []string{"api.schema.json", "request.schema.json"} {
		f, err := os.Open(filepath.Join(schemaDir, name))
		if err != nil {
			return nil, err
		}
		doc, err := jsonschema.UnmarshalJSON(f)
		_ = f.Close()
		if err != nil {
			return nil, err
		}
		if err := c.AddResource("https://github.com/salvo-run/salvo/docs/schema/"+name, doc); err != nil {
			return nil, err
		}
	}
	s := &apiSchemas{defs: map[string]*jsonschema.Schema{}}
	names := []string{"batch", "batch_list", "request", "error"}
	for _, ep := range api.Endpoints {
		names = append(names, ep+".request")
	}
	for _, name := range names {
		def, err := c.Compile(api.SchemaURL + "#/$defs/" + name)
		if err != nil {
			return nil, err
		}
		s.defs[name] = def
	}
	return s, nil
}

// check validates data against a definition.
func (s *apiSchemas) check(t *testing.T, def string, data []byte) error {
	t.Helper()
	schema, ok := s.defs[def]
	require.True(t, ok, "no definition %s", def)
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	require.NoError(t, err, "%s", data)
	return schema.Validate(v)
}

func (s *apiSchemas) valid(t *testing.T, def string, data []byte) {
	t.Helper()
	require.NoError(t, s.check(t, def, data), "%s: %s", def, data)
}

// replyDef is the definition of an endpoint's success reply.
func replyDef(endpoint string) string {
	switch endpoint {
	case api.EndpointBatchList:
		return "batch_list"
	case api.EndpointRequestGet, api.EndpointRequestCancel:
		return "request"
	}
	return "batch"
}

func (s *apiSchemas) validReply(t *testing.T, endpoint string, data []byte) {
	t.Helper()
	s.valid(t, replyDef(endpoint), data)
}

// validRequest checks a request body the service accepts; an empty body
// stands for {}.
func (s *apiSchemas) validRequest(t *testing.T, endpoint, body string) {
	t.Helper()
	if body == "" {
		body = "{}"
	}
	s.valid(t, endpoint+".request", []byte(body))
}
