package natsconfig_test

import (
	"context"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/salvo-run/salvo/internal/config"
	"github.com/salvo-run/salvo/internal/mockupstream"
	"github.com/salvo-run/salvo/internal/testredis"
	"github.com/salvo-run/salvo/internal/testupstream"
	"github.com/salvo-run/salvo/pkg/httpclient"
)

// cliScript is the nats CLI walk-through that docs/PROTOCOL.md quotes.
const cliScript = "../../docs/examples/nats-cli.sh"

// docs/examples/nats-cli.sh runs for real: a worker connected as
// salvo-worker, the script as salvo-client with nothing but its NATS
// credentials, both on accounts.conf. The batch it creates completes, every
// result and both events are read back, the error reply names its field,
// and the service is listed. Skipped when the nats CLI (natscli) or the
// script's tools are missing (CI does not install them), and when
// REDIS_URL names a shared Redis.
func TestNatsCLIScriptRunsABatchWithClientCredentials(t *testing.T) {
	for _, tool := range []string{"nats", "jq", "od", "bash"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not on the PATH (go install github.com/nats-io/natscli/nats@latest)", tool)
		}
	}
	if os.Getenv("REDIS_URL") != "" {
		// accounts.conf names the default prefix, so this test runs with
		// it; it needs a Redis of its own for that.
		t.Skip("needs its own redis-server (REDIS_URL is set)")
	}
	s := startServer(t)
	rdb := testredis.New(t)
	mock := testupstream.New(t, mockupstream.Options{Script: mockupstream.Script{Latency: &mockupstream.Latency{Min: 20 * time.Millisecond}}})

	// accounts.conf is written for the default prefix, so the worker uses
	// it (its Redis keys too: the Redis is this test's own).
	st := config.Default()
	st.NATSURL = (&url.URL{Scheme: "nats", User: url.UserPassword("salvo-worker", workerPassword), Host: s.Addr().String()}).String()
	st.RedisURL = rdb.URL()
	st.Prefix = "salvo"
	st.Streams.DiscoveryInterval = 100 * time.Millisecond
	st.Streams.FetchExpiry = time.Second
	// Byte limits are reserved on the server: keep them small.
	st.Streams.RequestsMaxBytes, st.Streams.ResultsMaxBytes, st.Streams.BodiesMaxBytes = 64<<20, 64<<20, 64<<20
	st.Streams.AdvisoriesMaxBytes = 16 << 20
	st.Worker.ShutdownGrace = time.Second
	st.Upstream.Default = &httpclient.Route{BaseURL: mock.URL()}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	p, err := config.Start(ctx, st, config.Options{})
	require.NoError(t, err)
	defer func() { require.NoError(t, p.Stop(context.Background())) }()

	cmd := exec.CommandContext(ctx, "bash", cliScript)
	cmd.Env = append(os.Environ(),
		"NATS_URL="+s.ClientURL(), "NATS_USER=salvo-client", "NATS_PASSWORD="+clientPassword,
		"NATS_CONTEXT=", "XDG_CONFIG_HOME="+t.TempDir(), // no nats context of the user's
		"N=5", "WAIT=60")
	out, err := cmd.CombinedOutput()
	t.Logf("%s", out)
	require.NoError(t, err)

	text := string(out)
	require.Contains(t, text, `"note":"same batch: create is idempotent by id"`)
	require.Contains(t, text, `{"status":"completed","request_counts":{"total":5,"completed":5,"failed":0},"results_published":5}`)
	require.Equal(t, 5, strings.Count(text, `"state":"completed","status_code":200`), "one result per request")
	require.Contains(t, text, `{"type":"created","status":"validating","total":5}`)
	require.Contains(t, text, `{"type":"completed","status":"completed","total":5}`)
	require.Contains(t, text, `"result_published":true`)
	require.Contains(t, text, `batch.create: invalid_argument: completion_window: "2x" is not a duration`)
	require.Contains(t, text, "salvo.api.batch.create")
}
