package config_test

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/salvo-run/salvo/internal/config"
	"github.com/salvo-run/salvo/internal/mockupstream"
	"github.com/salvo-run/salvo/internal/testnats"
	"github.com/salvo-run/salvo/internal/testredis"
	"github.com/salvo-run/salvo/internal/testupstream"
	"github.com/salvo-run/salvo/pkg/httpclient"
	"github.com/salvo-run/salvo/pkg/lifecycle"
	"github.com/salvo-run/salvo/pkg/queue"
)

// deployment is one isolated NATS + Redis + mock upstream.
type deployment struct {
	nats  *testnats.Server
	redis *testredis.Server
	mock  *mockupstream.Server
}

func newDeployment(t *testing.T) *deployment {
	t.Helper()
	return &deployment{nats: testnats.New(t), redis: testredis.New(t), mock: testupstream.New(t, mockupstream.Options{})}
}

// settings point at the deployment, with short timers so Stop is quick.
func (d *deployment) settings() config.Settings {
	s := config.Default()
	s.NATSURL = d.nats.URL()
	s.RedisURL = d.redis.URL()
	s.Prefix = d.redis.Prefix
	s.Streams.DiscoveryInterval = 100 * time.Millisecond
	s.Streams.FetchExpiry = time.Second
	s.Worker.ShutdownGrace = time.Second
	s.Upstream.Default = &httpclient.Route{BaseURL: d.mock.URL(), APIKeyEnv: "TEST_UPSTREAM_KEY"}
	return s
}

// streams lists the JetStream streams on the server.
func (d *deployment) streams(t *testing.T) []string {
	t.Helper()
	return streamNames(t, d.nats.Connect())
}

// streamNames lists the JetStream streams nc sees.
func streamNames(t *testing.T, nc *nats.Conn) []string {
	t.Helper()
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var names []string
	l := js.StreamNames(ctx)
	for n := range l.Name() {
		names = append(names, n)
	}
	require.NoError(t, l.Err())
	return names
}

func (d *deployment) redisKeys(t *testing.T) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	keys, err := d.redis.Keys(ctx)
	require.NoError(t, err)
	return keys
}

func TestStartRunsAWorkerAndStopEndsIt(t *testing.T) {
	t.Parallel()
	d := newDeployment(t)
	env := envOf(map[string]string{"TEST_UPSTREAM_KEY": "sk-test"})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	p, err := config.Start(ctx, d.settings(), config.Options{Getenv: env})
	require.NoError(t, err)
	require.NotEmpty(t, d.streams(t), "the streams are provisioned")
	require.Equal(t, "sk-test", p.Config.HTTP.Default.APIKey.Reveal(), "the key is read from the variable the route names")
	require.Equal(t, 2*time.Second, p.Config.Worker.HeartbeatInterval, "derived: a third of min(ack_wait, lease.ttl)")
	require.Equal(t, 1000+1+5+50, p.Config.Queue.MaxDeliver, "derived from the retry budget")
	require.Eventually(t, func() bool { return p.Worker.Healthy() == nil }, 10*time.Second, 20*time.Millisecond)

	// Reload applies routes and limits; invalid settings change nothing.
	s := d.settings()
	s.Worker.Concurrency.Models = map[string]int{"m": 3}
	require.NoError(t, p.Reload(ctx, s))
	require.Equal(t, 3, p.Config.Worker.Concurrency.Limit("m"))
	s.Upstream.Default.BaseURL = "ftp://nope"
	err = p.Reload(ctx, s)
	require.ErrorContains(t, err, "upstream.default.base_url (SALVO_UPSTREAM_DEFAULT_BASE_URL")
	require.Equal(t, d.mock.URL(), p.Config.HTTP.Default.BaseURL)

	require.NoError(t, p.Stop(ctx))
	require.NoError(t, p.Stop(ctx), "safe to stop twice")
	require.False(t, p.NATS.IsConnected(), "Stop closes the clients")
}

// Invalid settings fail before the process creates anything: no stream,
// no consumer, no Redis key.
func TestStartRefusesInvalidSettingsBeforeTouchingAnything(t *testing.T) {
	t.Parallel()
	d := newDeployment(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	missingKey := d.settings()
	badRoute := d.settings()
	badRoute.Upstream.Routes = map[string]httpclient.Route{"gpt-4o": {BaseURL: "http://x/v1?q=1"}}
	for name, tc := range map[string]struct {
		s    config.Settings
		want string
	}{
		"missing key variable": {missingKey, "upstream.default.api_key_env (SALVO_UPSTREAM_DEFAULT_API_KEY_ENV, flag -upstream-key-env): environment variable TEST_UPSTREAM_KEY is empty or not set"},
		"bad route URL":        {badRoute, `upstream.routes["gpt-4o"].base_url (SALVO_UPSTREAM_ROUTES)`},
	} {
		p, err := config.Start(ctx, tc.s, config.Options{Getenv: envOf(nil)})
		require.Nil(t, p, name)
		require.ErrorContains(t, err, tc.want, name)
		var ce *config.Error
		require.ErrorAs(t, err, &ce, name)
	}
	require.Empty(t, d.streams(t), "no stream was created")
	require.Empty(t, d.redisKeys(t), "no Redis key was written")
}

// The queue's storage setting reaches JetStream through queue's own type.
func TestMemoryStorageReachesTheStreams(t *testing.T) {
	t.Parallel()
	d := newDeployment(t)
	s := d.settings()
	s.Upstream.Default.APIKeyEnv = ""
	require.NoError(t, s.Streams.Storage.UnmarshalText([]byte("memory")))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := config.Start(ctx, s, config.Options{})
	require.NoError(t, err)
	defer func() { require.NoError(t, p.Stop(ctx)) }()
	require.Equal(t, queue.MemoryStorage, p.Config.Queue.Storage)

	js, err := jetstream.New(d.nats.Connect())
	require.NoError(t, err)
	info, err := js.Stream(ctx, p.Queue.RequestsStream())
	require.NoError(t, err)
	require.Equal(t, jetstream.MemoryStorage, info.CachedInfo().Config.Storage)
	require.Equal(t, lifecycle.PrefixDefault, config.PrefixDefault)
}

// streamName is the name of a stream of the deployment's prefix.
func (d *deployment) streamName(suffix string) string {
	return strings.ToUpper(d.redis.Prefix) + "_" + suffix
}

// A pod whose stream settings differ from the server's refuses to start
// (it does not rewrite what every pod shares), naming the field, both
// values, the key and its variable; ApplyStreams is the deliberate change.
func TestStartRefusesOtherStreamSettingsUntilApplied(t *testing.T) {
	t.Parallel()
	d := newDeployment(t)
	env := envOf(map[string]string{"TEST_UPSTREAM_KEY": "sk-test"})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p1, err := config.Start(ctx, d.settings(), config.Options{Getenv: env})
	require.NoError(t, err)
	defer func() { require.NoError(t, p1.Stop(ctx)) }()

	s := d.settings()
	s.Streams.ResultsMaxAge = time.Hour
	p2, err := config.Start(ctx, s, config.Options{Getenv: env})
	require.Nil(t, p2)
	require.ErrorIs(t, err, queue.ErrSettingsDiffer)
	require.ErrorContains(t, err, "stream "+d.streamName("RESULTS")+": max_age is 168h0m0s on the server, this worker has 1h0m0s "+
		"(streams.results_max_age, SALVO_STREAMS_RESULTS_MAX_AGE); change it with worker -apply-streams")
	require.ErrorContains(t, err, "object store "+d.streamName("BODIES")+": ttl is 168h0m0s on the server, this worker has 1h0m0s")

	js, err := jetstream.New(d.nats.Connect())
	require.NoError(t, err)
	maxAge := func() time.Duration {
		st, err := js.Stream(ctx, d.streamName("RESULTS"))
		require.NoError(t, err)
		return st.CachedInfo().Config.MaxAge
	}
	require.Equal(t, queue.ResultsMaxAgeDefault, maxAge(), "the refused pod changed the stream")

	changes, err := config.ApplyStreams(ctx, s, config.Options{})
	require.NoError(t, err)
	require.NotEmpty(t, changes)
	require.Equal(t, time.Hour, maxAge())
	p2, err = config.Start(ctx, s, config.Options{Getenv: env})
	require.NoError(t, err)
	require.NoError(t, p2.Stop(ctx))
}

// SIGHUP with a new retry budget re-derives max_deliver and applies it to
// the model consumers: the reload is the deliberate act.
func TestReloadWithANewRetryBudgetUpdatesMaxDeliver(t *testing.T) {
	t.Parallel()
	d := newDeployment(t)
	env := envOf(map[string]string{"TEST_UPSTREAM_KEY": "sk-test"})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := config.Start(ctx, d.settings(), config.Options{Getenv: env})
	require.NoError(t, err)
	defer func() { require.NoError(t, p.Stop(ctx)) }()

	// A request makes the fetch loop create the model's consumer.
	pub := p.Queue.NewPublisher()
	req := &lifecycle.Request{
		V: lifecycle.WireVersion, ID: "r1", CustomID: "c1", Model: "m", Method: "POST", URL: "/v1/chat/completions",
		Body: json.RawMessage(`{"model":"m","messages":[]}`), ExpiresAt: time.Now().Add(time.Hour).UTC(),
	}
	require.NoError(t, pub.Publish(ctx, req))
	require.NoError(t, pub.Flush(ctx))
	js, err := jetstream.New(d.nats.Connect())
	require.NoError(t, err)
	maxDeliver := func() int {
		c, err := js.Consumer(ctx, d.streamName("REQUESTS"), "model-m")
		if err != nil {
			return 0
		}
		return c.CachedInfo().Config.MaxDeliver
	}
	require.Eventually(t, func() bool { return maxDeliver() == 1000+1+5+50 }, 10*time.Second, 20*time.Millisecond)

	s := d.settings()
	s.Worker.Retry = s.Worker.Retry.WithMaxRetries(3)
	require.NoError(t, p.Reload(ctx, s))
	require.Equal(t, 3+1+5+50, p.Config.Queue.MaxDeliver)
	require.Equal(t, 3+1+5+50, maxDeliver(), "the model consumer got the new budget")
}

// A pod with routes only for "m" (no default route) creates no durable
// consumer for the models it cannot route, and no other pod does either:
// requests on 20 bogus model subjects each end failed unrouted_model.
func TestBogusModelsEndUnroutedWithoutConsumers(t *testing.T) {
	t.Parallel()
	d := newDeployment(t)
	s := d.settings()
	s.Upstream.Default = nil
	s.Upstream.Routes = map[string]httpclient.Route{"m": {BaseURL: d.mock.URL()}}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	p, err := config.Start(ctx, s, config.Options{})
	require.NoError(t, err)
	defer func() { require.NoError(t, p.Stop(ctx)) }()

	pub := p.Queue.NewPublisher()
	ids := map[string]bool{}
	for i := range 20 {
		id := "bogus-" + strconv.Itoa(i)
		ids[id] = true
		require.NoError(t, pub.Publish(ctx, &lifecycle.Request{
			V: lifecycle.WireVersion, ID: id, CustomID: id, Model: "bogus/model-" + strconv.Itoa(i), Method: "POST",
			URL: "/v1/chat/completions", Body: json.RawMessage(`{"messages":[]}`), ExpiresAt: time.Now().Add(time.Hour).UTC(),
		}))
	}
	require.NoError(t, pub.Flush(ctx))

	results := map[string]*lifecycle.Result{}
	require.Eventually(t, func() bool {
		err := p.Queue.ReplayResults(ctx, "", func(r *lifecycle.Result) error { results[r.ID] = r; return nil })
		return err == nil && len(results) == 20
	}, 30*time.Second, 100*time.Millisecond)
	for id, r := range results {
		require.True(t, ids[id], id)
		require.Equal(t, lifecycle.StateFailed, r.State, id)
		require.NotNil(t, r.Error, id)
		require.Equal(t, lifecycle.CodeUnroutedModel, r.Error.Code, id)
	}

	js, err := jetstream.New(d.nats.Connect())
	require.NoError(t, err)
	st, err := js.Stream(ctx, d.streamName("REQUESTS"))
	require.NoError(t, err)
	names := st.ConsumerNames(ctx)
	var consumers []string
	for n := range names.Name() {
		consumers = append(consumers, n)
	}
	require.NoError(t, names.Err())
	require.Empty(t, consumers, "a bogus model got a durable consumer")
}
