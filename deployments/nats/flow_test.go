package natsconfig_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/salvo-run/salvo/internal/config"
	"github.com/salvo-run/salvo/internal/mockupstream"
	"github.com/salvo-run/salvo/internal/testbin"
	"github.com/salvo-run/salvo/internal/testredis"
	"github.com/salvo-run/salvo/internal/testupstream"
	"github.com/salvo-run/salvo/pkg/httpclient"
)

// TestClientWithNATSCredentialsOnlyRunsABatch: a client that has nothing
// but the salvo-client user of accounts.conf (no Redis, no control
// subjects) creates a batch through the batch API, publishes 1,000
// requests as raw JSON, follows batch.get until the batch is completed,
// and reads 1,000 results, one per request, from SALVO_RESULTS.
func TestClientWithNATSCredentialsOnlyRunsABatch(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	if os.Getenv("REDIS_URL") != "" {
		// accounts.conf names the default prefix, so this test runs with
		// it; it needs a Redis of its own for that.
		t.Skip("needs its own redis-server (REDIS_URL is set)")
	}
	const n = 1000
	s := startServer(t)
	rd := testredis.New(t)
	mock := testupstream.New(t, mockupstream.Options{})

	workerURL := url.URL{Scheme: "nats", User: url.UserPassword("salvo-worker", workerPassword), Host: s.Addr().String()}
	set := config.Default()
	set.NATSURL = workerURL.String()
	set.RedisURL = rd.URL()
	set.Streams.DiscoveryInterval = 100 * time.Millisecond
	set.Worker.ShutdownGrace = time.Second
	set.Upstream.Default = &httpclient.Route{BaseURL: mock.URL(), APIKeyEnv: "TEST_UPSTREAM_KEY"}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	p, err := config.Start(ctx, set, config.Options{Getenv: func(k string) string {
		if k == "TEST_UPSTREAM_KEY" {
			return "sk-test"
		}
		return ""
	}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Stop(context.Background()) })

	client, clientErrs := conn(t, s, "salvo-client", clientPassword)
	call := func(endpoint string, body any) map[string]any {
		t.Helper()
		data, err := json.Marshal(body)
		require.NoError(t, err)
		m, err := client.Request("salvo.api."+endpoint, data, 10*time.Second)
		require.NoError(t, err, endpoint)
		require.Empty(t, m.Header.Get("Nats-Service-Error-Code"), "%s: %s", endpoint, m.Data)
		var out map[string]any
		require.NoError(t, json.Unmarshal(m.Data, &out))
		return out
	}

	created := call("batch.create", map[string]any{"id": "flow-1", "completion_window": "1h", "total": n,
		"endpoint": "/v1/chat/completions", "metadata": map[string]string{"team": "search"}})
	require.Equal(t, "flow-1", created["id"])
	require.Equal(t, "batch", created["object"])
	require.Equal(t, "validating", created["status"])

	// Raw JSON, as any language would publish it: no salvo code involved.
	// expires_at is left out: the batch's deadline applies.
	js, err := jetstream.New(client)
	require.NoError(t, err)
	for i := range n {
		body := fmt.Sprintf(`{"v":1,"id":"flow-1-%04d","batch_id":"flow-1","custom_id":"row-%d","model":"gpt-4o-mini",`+
			`"method":"POST","url":"/v1/chat/completions","body":{"model":"gpt-4o-mini","messages":[{"role":"user","content":"q%d"}]}}`, i, i, i)
		msg := nats.NewMsg("salvo.req.gpt-4o-mini.flow-1")
		msg.Data = []byte(body)
		msg.Header.Set(nats.MsgIdHdr, fmt.Sprintf("flow-1.flow-1-%04d", i))
		_, err := js.PublishMsgAsync(msg)
		require.NoError(t, err)
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-ctx.Done():
		t.Fatal("publishes not acknowledged")
	}

	var last map[string]any
	require.Eventually(t, func() bool {
		last = call("batch.get", map[string]string{"id": "flow-1"})
		return last["status"] == "completed"
	}, 90*time.Second, 100*time.Millisecond, "batch never completed: %v", last)
	counts := last["request_counts"].(map[string]any)
	require.EqualValues(t, n, counts["total"])
	require.EqualValues(t, n, counts["completed"])
	require.EqualValues(t, 0, counts["failed"])
	require.NotNil(t, last["completed_at"])
	require.NotNil(t, last["in_progress_at"])

	// Every result, read with an ordered consumer on the batch's subject:
	// one line per request, counted on the stream (no dedup in the count).
	cons, err := js.OrderedConsumer(ctx, "SALVO_RESULTS", jetstream.OrderedConsumerConfig{FilterSubjects: []string{"salvo.res.flow-1"}})
	require.NoError(t, err)
	seen := map[string]int{}
	for len(seen) < n {
		msgs, err := cons.Fetch(500, jetstream.FetchMaxWait(5*time.Second))
		require.NoError(t, err)
		got := 0
		for m := range msgs.Messages() {
			got++
			var res struct {
				ID       string `json:"id"`
				CustomID string `json:"custom_id"`
				State    string `json:"state"`
			}
			require.NoError(t, json.Unmarshal(m.Data(), &res))
			require.Equal(t, "completed", res.State, res.ID)
			seen[res.ID]++
		}
		require.NoError(t, msgs.Error())
		require.NotZero(t, got, "results stopped at %d of %d", len(seen), n)
	}
	for id, c := range seen {
		require.Equal(t, 1, c, "result lines of %s", id)
	}
	// The producer CLI with the same credentials: --user/--password as
	// the nats CLI takes them; a wrong password is "unreachable" (exit 3).
	producer := func(args ...string) (string, int) {
		cmd := exec.CommandContext(ctx, testbin.Producer(t), append(args, "--server", s.ClientURL())...)
		cmd.Env = append(os.Environ(), "NATS_URL=", "NATS_USER=", "NATS_PASSWORD=")
		out, err := cmd.CombinedOutput()
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			return string(out), exit.ExitCode()
		}
		require.NoError(t, err, "%s", out)
		return string(out), 0
	}
	out, code := producer("status", "flow-1", "--user", "salvo-client", "--password", clientPassword)
	require.Equal(t, 0, code, out)
	require.Contains(t, out, "completed")
	out, code = producer("status", "flow-1", "--user", "salvo-client", "--password", "wrong")
	require.Equal(t, 3, code, out)
	require.NotContains(t, out, "wrong", "the password is never printed")
	select {
	case err := <-clientErrs:
		t.Fatalf("the client hit a permission error: %v", err)
	default:
	}
}
