package main

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/salvo-run/salvo/internal/config"
	"github.com/salvo-run/salvo/internal/mockupstream"
	"github.com/salvo-run/salvo/internal/testnats"
	"github.com/salvo-run/salvo/internal/testredis"
	"github.com/salvo-run/salvo/internal/testupstream"
	"github.com/salvo-run/salvo/pkg/api"
	"github.com/salvo-run/salvo/pkg/client"
	"github.com/salvo-run/salvo/pkg/httpclient"
	"github.com/salvo-run/salvo/pkg/lifecycle"
	"github.com/salvo-run/salvo/pkg/queue"
)

// deployment is one isolated salvo: an embedded nats-server, a Redis, a
// mock upstream and a worker running in-process, serving the batch API
// on a prefix of its own.
type deployment struct {
	nats   *testnats.Server
	proc   *config.Process
	prefix string
	client *client.Client
}

func newDeployment(t *testing.T) *deployment {
	t.Helper()
	ns := testnats.New(t)
	rd := testredis.New(t)
	mock := testupstream.New(t, mockupstream.Options{})
	s := config.Default()
	s.NATSURL = ns.URL()
	s.RedisURL = rd.URL()
	s.Prefix = rd.Prefix
	s.Streams.DiscoveryInterval = 100 * time.Millisecond
	s.Streams.FetchExpiry = time.Second
	s.Worker.ShutdownGrace = time.Second
	// A cancelled batch whose requests were never published turns final
	// after the grace for missing results: keep it short.
	s.Worker.Batches.FinalizeGrace = 500 * time.Millisecond
	s.Worker.Batches.SweepInterval = 100 * time.Millisecond
	s.Upstream.Default = &httpclient.Route{BaseURL: mock.URL()}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := config.Start(ctx, s, config.Options{})
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), p.StopTimeout())
		defer cancel()
		_ = p.Stop(ctx)
	})
	d := &deployment{nats: ns, proc: p, prefix: rd.Prefix, client: client.New(ns.Connect(), rd.Prefix)}
	// Start returns once the server has the API's subscriptions.
	_, err = d.client.ListBatches(ctx, api.ListParams{})
	require.NoError(t, err, "the batch API answers as soon as Start returned")
	return d
}

// env points the CLI at the deployment the way a user would.
func (d *deployment) env() map[string]string {
	return map[string]string{"NATS_URL": d.nats.URL(), "SALVO_PREFIX": d.prefix}
}

// createBatch creates a sealed batch of total requests.
func (d *deployment) createBatch(t *testing.T, id string, total int64, meta map[string]string) api.BatchObject {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b, err := d.client.CreateBatch(ctx, api.CreateParams{
		ID: id, CompletionWindow: "1h", Endpoint: "/v1/chat/completions", Metadata: meta, Total: total,
	})
	require.NoError(t, err)
	return b
}

// publish sends requests from..to-1 of batch id through the queue.
func (d *deployment) publish(t *testing.T, id string, from, to int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := from; i < to; i++ {
		req := &lifecycle.Request{
			V: lifecycle.WireVersion, ID: fmt.Sprintf("%s-%d", id, i), BatchID: id, CustomID: fmt.Sprintf("row-%d", i),
			Model: "gpt-4o-mini", Method: "POST", URL: "/v1/chat/completions",
			Body: []byte(fmt.Sprintf(`{"model":"gpt-4o-mini","messages":[{"role":"user","content":"q%d"}]}`, i)),
		}
		require.NoError(t, d.proc.Queue.PublishRequest(ctx, req))
	}
}

// waitStatus waits until batch id has status.
func (d *deployment) waitStatus(t *testing.T, id string, status lifecycle.BatchStatus) api.BatchObject {
	t.Helper()
	var b api.BatchObject
	require.Eventually(t, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		var err error
		b, err = d.client.Batch(ctx, id)
		return err == nil && b.Status == string(status)
	}, 60*time.Second, 20*time.Millisecond, "batch %s never %s: %+v", id, status, b)
	return b
}

// requestsStored counts every request message the REQUESTS stream ever
// stored (acked ones leave a work queue; the last sequence stays).
func (d *deployment) requestsStored(t *testing.T) uint64 {
	t.Helper()
	nc := d.nats.Connect()
	q, err := queue.New(nc, queue.Config{Prefix: d.prefix}, zerolog.Nop())
	require.NoError(t, err)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	st, err := js.Stream(context.Background(), q.RequestsStream())
	require.NoError(t, err)
	info, err := st.Info(context.Background())
	require.NoError(t, err)
	return info.State.LastSeq
}
