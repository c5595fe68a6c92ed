package demo

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"

	"github.com/salvo-run/salvo/internal/mockupstream"
	"github.com/salvo-run/salvo/pkg/httpclient"
)

// APIKeyEnv is the variable the demo's route to a real upstream reads its
// key from (cmd/demo passes its value as Options.APIKey).
const APIKeyEnv = "OPENAI_API_KEY"

// upstream is what the workers call: the mock, or the API at UpstreamURL.
type upstream struct {
	route httpclient.Route
	// getenv answers the route's key variable for the workers.
	getenv func(string) string
	label  string
	// mock is the mock upstream, nil for a real one.
	mock *mockupstream.Server
}

// openUpstream starts the mock upstream, or routes to o.UpstreamURL with
// o.APIKey (the workers read it through getenv, as a worker pod reads its
// route's api_key_env). The label never shows the key or a URL password.
func openUpstream(o Options) (*upstream, error) {
	none := func(string) string { return "" }
	if o.UpstreamURL == "" {
		mock, err := mockupstream.New(mockOptions())
		if err != nil {
			return nil, err
		}
		return &upstream{
			route:  httpclient.Route{BaseURL: mock.URL()},
			getenv: none,
			label:  fmt.Sprintf("mock OpenAI-compatible API at %s (%s)", mock.URL(), mockDescription),
			mock:   mock,
		}, nil
	}
	u, err := url.Parse(o.UpstreamURL)
	if err != nil {
		return nil, errors.New("demo: SALVO_DEMO_UPSTREAM_URL is not a URL")
	}
	up := &upstream{route: httpclient.Route{BaseURL: o.UpstreamURL}, getenv: none}
	key := "no API key (" + APIKeyEnv + " unset)"
	if !o.APIKey.IsZero() {
		up.route.APIKeyEnv = APIKeyEnv
		up.getenv = func(name string) string {
			if name == APIKeyEnv {
				return o.APIKey.Reveal()
			}
			return ""
		}
		key = "bearer key from " + APIKeyEnv
	}
	up.label = fmt.Sprintf("%s (SALVO_DEMO_UPSTREAM_URL), %s", u.Redacted(), key)
	return up, nil
}

// close stops the mock, if any.
func (u *upstream) close() {
	if u.mock != nil {
		u.mock.Close()
	}
}

// maxLine bounds one input line when rewriting its model (the producer's
// own bound on a request body is far below).
const maxLine = 64 << 20

// rewriteModel copies the input src to dst with body.model set to model
// on every line whose body names a model. Other lines (blank, invalid, a
// body without a model) are copied unchanged, so the producer reports the
// same bad lines at the same line numbers.
func rewriteModel(src, dst, model string) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("demo: input: %w", err)
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return fmt.Errorf("demo: input copy: %w", err)
	}
	defer out.Close()
	r := bufio.NewReaderSize(in, 64<<10)
	w := bufio.NewWriter(out)
	for n := 1; ; n++ {
		line, err := r.ReadBytes('\n')
		if len(line) > maxLine {
			return fmt.Errorf("demo: input line %d is longer than %d bytes", n, maxLine)
		}
		if len(line) > 0 {
			if _, werr := w.Write(withModel(line, model)); werr != nil {
				return fmt.Errorf("demo: input copy: %w", werr)
			}
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("demo: input: %w", err)
		}
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("demo: input copy: %w", err)
	}
	return out.Close()
}

// withModel is line with body.model replaced, or line itself when it is
// not a JSON object whose body object names a model.
func withModel(line []byte, model string) []byte {
	var top map[string]json.RawMessage
	if json.Unmarshal(line, &top) != nil {
		return line
	}
	var body map[string]json.RawMessage
	if json.Unmarshal(top["body"], &body) != nil {
		return line
	}
	if _, ok := body["model"]; !ok {
		return line
	}
	body["model"], _ = json.Marshal(model)
	b, err := json.Marshal(body)
	if err != nil {
		return line
	}
	top["body"] = b
	out, err := json.Marshal(top)
	if err != nil {
		return line
	}
	if bytes.HasSuffix(line, []byte("\n")) {
		out = append(out, '\n')
	}
	return out
}
