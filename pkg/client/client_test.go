package client_test

import (
	"context"
	"slices"
	"testing"
	"time"

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
)

// setup starts one isolated deployment — an embedded nats-server, a Redis,
// a mock upstream and a worker serving the batch API on a prefix of its
// own — and returns a client of it.
func setup(t *testing.T) *client.Client {
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
	return client.New(ns.Connect(), rd.Prefix)
}

func ctxT(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func apiError(t *testing.T, err error, code string) *client.Error {
	t.Helper()
	var ae *client.Error
	require.ErrorAs(t, err, &ae)
	require.Equal(t, code, ae.Code, ae.Error())
	require.True(t, client.IsCode(err, code))
	return ae
}

func TestCallWithNoServiceFailsAtOnceNamingTheSubject(t *testing.T) {
	t.Parallel()
	ns := testnats.New(t)
	c := client.New(ns.Connect(), "nobody")
	start := time.Now()
	_, err := c.Batch(ctxT(t), "b1")
	require.ErrorIs(t, err, client.ErrNoService)
	require.ErrorContains(t, err, "nobody.api.batch.get")
	require.ErrorContains(t, err, `prefix "nobody"`)
	require.Less(t, time.Since(start), 5*time.Second, "no responders is known at once, not after the call timeout")
	require.False(t, client.IsCode(err, api.CodeNotFound), "no service is not an API error")
}

func TestNewWithoutPrefixUsesTheDefault(t *testing.T) {
	t.Parallel()
	ns := testnats.New(t)
	c := client.New(ns.Connect(), "")
	require.Equal(t, lifecycle.PrefixDefault, c.Prefix())
	_, err := c.ListBatches(ctxT(t), api.ListParams{})
	require.ErrorIs(t, err, client.ErrNoService)
	require.ErrorContains(t, err, lifecycle.PrefixDefault+".api.batch.list")
}

func TestAPIErrorsComeBackAsErrorWithTheirCode(t *testing.T) {
	t.Parallel()
	c := setup(t)
	ctx := ctxT(t)

	t.Run("an unknown batch is not_found", func(t *testing.T) {
		_, err := c.Batch(ctx, "missing-1")
		ae := apiError(t, err, api.CodeNotFound)
		require.Contains(t, ae.Message, "missing-1")
		_, err = c.CancelBatch(ctx, "missing-1")
		ae = apiError(t, err, api.CodeNotFound)
		require.Contains(t, ae.Message, "missing-1")
	})

	t.Run("the same id with another completion_window is a conflict naming the field", func(t *testing.T) {
		_, err := c.CreateBatch(ctx, api.CreateParams{ID: "twice-1", CompletionWindow: "1h", Total: 1})
		require.NoError(t, err)
		_, err = c.CreateBatch(ctx, api.CreateParams{ID: "twice-1", CompletionWindow: "2h", Total: 1})
		ae := apiError(t, err, api.CodeConflict)
		require.Contains(t, ae.Message, "completion_window")
		require.Contains(t, ae.Message, "twice-1")
	})

	for _, tc := range []struct {
		name  string
		p     api.CreateParams
		field string
	}{
		{"a negative total", api.CreateParams{ID: "neg-1", Total: -1}, "total"},
		{"an id with a space", api.CreateParams{ID: "a b"}, "id"},
		{"an endpoint that is not a path", api.CreateParams{ID: "ep-1", Endpoint: "not a path"}, "endpoint"},
	} {
		t.Run(tc.name+" is invalid_argument naming "+tc.field, func(t *testing.T) {
			_, err := c.CreateBatch(ctx, tc.p)
			ae := apiError(t, err, api.CodeInvalidArgument)
			require.Contains(t, ae.Message, tc.field+":")
		})
	}
}

func TestBatchRoundTrip(t *testing.T) {
	t.Parallel()
	c := setup(t)
	ctx := ctxT(t)
	meta := map[string]string{"owner": "client-test"}

	created, err := c.CreateBatch(ctx, api.CreateParams{
		ID: "round-1", CompletionWindow: "1h", Endpoint: "/v1/chat/completions", Metadata: meta, Total: 2,
	})
	require.NoError(t, err)
	require.Equal(t, "round-1", created.ID)
	require.Equal(t, "batch", created.Object)
	require.Equal(t, "1h", created.CompletionWindow)
	require.NotNil(t, created.Endpoint)
	require.Equal(t, "/v1/chat/completions", *created.Endpoint)
	require.Equal(t, meta, created.Metadata)
	require.EqualValues(t, 2, created.RequestCounts.Total)
	require.NotNil(t, created.ExpiresAt)

	again, err := c.CreateBatch(ctx, api.CreateParams{
		ID: "round-1", CompletionWindow: "1h", Endpoint: "/v1/chat/completions", Metadata: meta, Total: 2,
	})
	require.NoError(t, err, "a retried create with the same contents is not a conflict")
	require.Equal(t, created.CreatedAt, again.CreatedAt)

	got, err := c.Batch(ctx, "round-1")
	require.NoError(t, err)
	require.Equal(t, created.ID, got.ID)
	require.Equal(t, created.CreatedAt, got.CreatedAt)
	require.Equal(t, meta, got.Metadata)

	_, err = c.CreateBatch(ctx, api.CreateParams{ID: "round-2", Total: 1})
	require.NoError(t, err)
	all, err := c.ListBatches(ctx, api.ListParams{})
	require.NoError(t, err)
	require.Equal(t, "list", all.Object)
	ids := make([]string, 0, len(all.Data))
	for _, b := range all.Data {
		ids = append(ids, b.ID)
	}
	require.ElementsMatch(t, []string{"round-1", "round-2"}, ids)
	mine, err := c.ListBatches(ctx, api.ListParams{Metadata: meta})
	require.NoError(t, err)
	require.Len(t, mine.Data, 1)
	require.Equal(t, "round-1", mine.Data[0].ID)

	ending := []string{string(lifecycle.BatchCancelling), string(lifecycle.BatchCancelled)}
	cancelled, err := c.CancelBatch(ctx, "round-1")
	require.NoError(t, err)
	require.Equal(t, "round-1", cancelled.ID)
	require.True(t, slices.Contains(ending, cancelled.Status), cancelled.Status)
	require.NotNil(t, cancelled.CancellingAt)

	after, err := c.Batch(ctx, "round-1")
	require.NoError(t, err)
	require.True(t, slices.Contains(ending, after.Status), after.Status)
}
