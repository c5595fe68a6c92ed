package producer_test

import (
	"context"
	"encoding/json"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/salvo-run/salvo/internal/config"
	"github.com/salvo-run/salvo/internal/mockupstream"
	"github.com/salvo-run/salvo/internal/testbin"
	"github.com/salvo-run/salvo/internal/testnats"
	"github.com/salvo-run/salvo/internal/testredis"
	"github.com/salvo-run/salvo/internal/testupstream"
	"github.com/salvo-run/salvo/pkg/client"
	"github.com/salvo-run/salvo/pkg/httpclient"
	"github.com/salvo-run/salvo/pkg/lifecycle"
)

// TestProducerKilledMidPublishThenRerunAfterTheDuplicateWindow: the
// producer process is killed while it publishes, and the same submit is run
// again once the stream's duplicate window (shortened to 1 s) has passed,
// so the stream no longer drops the repeated messages: every request is
// still called upstream once and has exactly one result line on the
// stream.
func TestProducerKilledMidPublishThenRerunAfterTheDuplicateWindow(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end with child processes")
	}
	const n = 20_000
	ns, rd := testnats.New(t), testredis.New(t)
	var mu sync.Mutex
	calls := map[string]int{}
	mock := testupstream.New(t, mockupstream.Options{
		Script: mockupstream.Script{Latency: &mockupstream.Latency{Min: time.Millisecond, Max: 3 * time.Millisecond}},
		OnRequest: func(r *http.Request, _, _ string) {
			mu.Lock()
			calls[r.Header.Get(httpclient.HeaderSalvoRequestID)]++
			mu.Unlock()
		},
	})
	set := config.Default()
	set.NATSURL, set.RedisURL, set.Prefix = ns.URL(), rd.URL(), rd.Prefix
	set.Streams.DiscoveryInterval = 100 * time.Millisecond
	set.Streams.AckWait = 500 * time.Millisecond
	set.Streams.DuplicateWindow = time.Second
	set.Lease.LeaseTTL = time.Second
	set.Worker.ShutdownGrace = time.Second
	set.Upstream.Default = &httpclient.Route{BaseURL: mock.URL(), APIKeyEnv: "K"}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	p, err := config.Start(ctx, set, config.Options{Getenv: func(string) string { return "sk-test" }})
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Stop(context.Background()) })

	nc := ns.Connect()
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	path := writeFile(t, n)
	submit := func() *exec.Cmd {
		return exec.Command(testbin.Producer(t), "submit", path, "--batch-id", "b-kill",
			"--server", ns.URL(), "--prefix", rd.Prefix)
	}

	// First run: killed once some, not all, requests are in the stream.
	first := submit()
	require.NoError(t, first.Start())
	stream, err := js.Stream(ctx, strings.ToUpper(rd.Prefix)+"_REQUESTS") // the worker provisioned it
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		info, err := stream.Info(ctx)
		return err == nil && info.State.LastSeq >= 200
	}, time.Minute, time.Millisecond, "the producer published nothing")
	require.NoError(t, first.Process.Signal(syscall.SIGKILL))
	_ = first.Wait()
	info, err := stream.Info(ctx)
	require.NoError(t, err)
	killedAt := info.State.LastSeq
	require.Less(t, killedAt, uint64(n), "the kill came after the last publish; the test proves nothing")
	t.Logf("killed after %d of %d publishes", killedAt, n)

	// The duplicate window passes: from now on only Redis knows what ran.
	<-time.After(2 * set.Streams.DuplicateWindow)
	info, err = stream.Info(ctx) // the first run's last publishes landed after the kill
	require.NoError(t, err)
	before := info.State.LastSeq

	out, err := submit().CombinedOutput()
	require.NoError(t, err, "%s", out)
	info, err = stream.Info(ctx)
	require.NoError(t, err)
	require.Equal(t, before+n, info.State.LastSeq,
		"past the window the stream stored every message again, the first run's included: only Redis stood between them and a second run")
	c := client.New(nc, rd.Prefix)
	require.Eventually(t, func() bool {
		b, err := c.Batch(ctx, "b-kill")
		return err == nil && b.Status == string(lifecycle.BatchCompleted)
	}, 2*time.Minute, 100*time.Millisecond)

	// One result line per request, counted on the stream itself.
	cons, err := js.OrderedConsumer(ctx, strings.ToUpper(rd.Prefix)+"_RESULTS", jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{rd.Prefix + ".res.b-kill"},
	})
	require.NoError(t, err)
	lines := map[string]int{}
	total := 0
	for total < n {
		msgs, err := cons.Fetch(1000, jetstream.FetchMaxWait(2*time.Second))
		require.NoError(t, err)
		got := 0
		for m := range msgs.Messages() {
			got++
			var res struct {
				ID string `json:"id"`
			}
			require.NoError(t, json.Unmarshal(m.Data(), &res))
			lines[res.ID]++
		}
		require.NoError(t, msgs.Error())
		if got == 0 {
			break
		}
		total += got
	}
	require.Len(t, lines, n)
	require.Equal(t, n, total, "result messages on the stream")
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, calls, n)
	for id, k := range calls {
		require.Equal(t, 1, k, "upstream calls of %s", id)
	}
}
