package config_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/salvo-run/salvo/internal/config"
	"github.com/salvo-run/salvo/pkg/queue"
)

func envOf(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func writeFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "worker.yaml")
	require.NoError(t, os.WriteFile(p, []byte(body), 0o600))
	return p
}

func TestLoadPrecedence(t *testing.T) {
	t.Parallel()
	path := writeFile(t, "concurrency:\n  default: 10\nprefix: fromfile\nshutdown_grace: 5s\nstreams:\n  ack_wait: 20s\n")

	s, err := config.Load([]string{"-config", path}, envOf(nil))
	require.NoError(t, err)
	require.Equal(t, 10, s.Worker.Concurrency.Default, "file overrides default")
	require.Equal(t, "fromfile", s.Prefix)
	require.Equal(t, 5*time.Second, s.Worker.ShutdownGrace)
	require.Equal(t, config.NATSURLDefault, s.NATSURL, "unset keys keep their default")

	env := envOf(map[string]string{
		"SALVO_CONCURRENCY": "20", "SALVO_PREFIX": "fromenv", "SALVO_CONFIG": path,
		"SALVO_STREAMS_ACK_WAIT": "25s",
	})
	s, err = config.Load(nil, env)
	require.NoError(t, err)
	require.Equal(t, 20, s.Worker.Concurrency.Default, "env overrides file (file found through SALVO_CONFIG)")
	require.Equal(t, "fromenv", s.Prefix)
	require.Equal(t, 25*time.Second, s.Streams.AckWait)

	s, err = config.Load([]string{"-concurrency", "30", "-prefix", "fromflag"}, env)
	require.NoError(t, err)
	require.Equal(t, 30, s.Worker.Concurrency.Default, "flag overrides env")
	require.Equal(t, "fromflag", s.Prefix)
	require.Equal(t, 5*time.Second, s.Worker.ShutdownGrace, "file value survives where nothing overrides it")
	require.Equal(t, 25*time.Second, s.Streams.AckWait, "env value survives where no flag overrides it")

	// The canonical variable wins over the older alias.
	s, err = config.Load(nil, envOf(map[string]string{"SALVO_CONCURRENCY": "20", "SALVO_CONCURRENCY_DEFAULT": "21"}))
	require.NoError(t, err)
	require.Equal(t, 21, s.Worker.Concurrency.Default)

	// -config beats SALVO_CONFIG.
	other := writeFile(t, "prefix: other\n")
	s, err = config.Load([]string{"-config", other}, envOf(map[string]string{"SALVO_CONFIG": path}))
	require.NoError(t, err)
	require.Equal(t, "other", s.Prefix)
	require.Equal(t, config.Default().Worker.Concurrency.Default, s.Worker.Concurrency.Default)
}

// Every invalid value is reported with the key as the file spells it and
// the variable that sets it, whichever layer it came from.
func TestLoadRejectsInvalidNamingKeyAndVariable(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, file  string
		args        []string
		env         map[string]string
		key, envVar string
	}{
		{name: "bad duration in the file", file: "streams:\n  ack_wait: soon\n", key: "streams.ack_wait", envVar: "SALVO_STREAMS_ACK_WAIT"},
		{name: "bad duration in the env", env: map[string]string{"SALVO_UPSTREAM_IDLE_TIMEOUT": "2"}, key: "upstream.idle_timeout", envVar: "SALVO_UPSTREAM_IDLE_TIMEOUT"},
		{name: "negative timeout", file: "upstream:\n  connect_timeout: -1s\n", key: "upstream.connect_timeout", envVar: "SALVO_UPSTREAM_CONNECT_TIMEOUT"},
		{name: "negative replicas", env: map[string]string{"SALVO_STREAMS_REPLICAS": "-1"}, key: "streams.replicas", envVar: "SALVO_STREAMS_REPLICAS"},
		{name: "negative reclaims", file: "lease:\n  max_reclaims: -3\n", key: "lease.max_reclaims", envVar: "SALVO_LEASE_MAX_RECLAIMS"},
		{name: "negative wait replicas", env: map[string]string{"SALVO_LEASE_WAIT_REPLICAS": "-1"}, key: "lease.wait_replicas", envVar: "SALVO_LEASE_WAIT_REPLICAS"},
		{name: "wait with Redis Cluster", file: "redis_addrs: [127.0.0.1:7000, 127.0.0.1:7001]\nlease:\n  wait_replicas: 1\n", key: "lease.wait_replicas", envVar: "SALVO_LEASE_WAIT_REPLICAS"},
		{name: "wait beyond the Redis call bound", file: "lease:\n  wait_replicas: 1\n  wait_timeout: 10s\n", key: "lease.wait_timeout", envVar: "SALVO_LEASE_WAIT_TIMEOUT"},
		{name: "negative lease ttl", file: "lease:\n  ttl: -1s\n", key: "lease.ttl", envVar: "SALVO_LEASE_TTL"},
		{name: "negative shutdown grace", env: map[string]string{"SALVO_SHUTDOWN_GRACE": "-1s"}, key: "shutdown_grace", envVar: "SALVO_SHUTDOWN_GRACE"},
		{name: "negative response bound", file: "upstream:\n  max_response_bytes: -1\n", key: "upstream.max_response_bytes", envVar: "SALVO_UPSTREAM_MAX_RESPONSE_BYTES"},
		{name: "transport backoff over the cap", file: "upstream:\n  transport_backoff: 1h\n", key: "upstream.transport_backoff", envVar: "SALVO_UPSTREAM_TRANSPORT_BACKOFF"},
		{name: "negative stream limit", env: map[string]string{"SALVO_STREAMS_REQUESTS_MAX_MSGS": "-1"}, key: "streams.requests_max_msgs", envVar: "SALVO_STREAMS_REQUESTS_MAX_MSGS"},
		{name: "negative byte limit in the file", file: "streams:\n  bodies_max_bytes: -2\n", key: "streams.bodies_max_bytes", envVar: "SALVO_STREAMS_BODIES_MAX_BYTES"},
		{name: "storage", file: "streams:\n  storage: tape\n", key: "streams.storage", envVar: "SALVO_STREAMS_STORAGE"},
		{name: "storage in the env", env: map[string]string{"SALVO_STREAMS_STORAGE": "disk"}, key: "streams.storage", envVar: "SALVO_STREAMS_STORAGE"},
		{name: "log level", file: "log_level: loud\n", key: "log_level", envVar: "SALVO_LOG_LEVEL"},
		{name: "prefix", file: "prefix: a.b\n", key: "prefix", envVar: "SALVO_PREFIX"},
		{name: "prefix with a hash tag", env: map[string]string{"SALVO_PREFIX": "a{b}"}, key: "prefix", envVar: "SALVO_PREFIX"},
		{name: "prefix too long", args: []string{"-prefix", "abcdefghijklmnopqrstuvwxyz0123456789"}, key: "prefix", envVar: "SALVO_PREFIX"},
		{name: "heartbeat outside ack wait", file: "streams:\n  ack_wait: 6s\nheartbeat_interval: 5s\n", key: "heartbeat_interval", envVar: "SALVO_HEARTBEAT_INTERVAL"},
		{name: "max deliver below the retry budget", file: "streams:\n  max_deliver: 100\n", key: "streams.max_deliver", envVar: "SALVO_STREAMS_MAX_DELIVER"},
		{name: "ack wait too short", file: "streams:\n  ack_wait: 1ms\n", key: "streams.ack_wait", envVar: "SALVO_STREAMS_ACK_WAIT"},
		{name: "duplicate window over the max age", file: "streams:\n  duplicate_window: 200h\n", key: "streams.duplicate_window", envVar: "SALVO_STREAMS_DUPLICATE_WINDOW"},
		{name: "duplicate window inside two ack waits", file: "streams:\n  duplicate_window: 50s\n  ack_wait: 30s\n", key: "streams.duplicate_window", envVar: "SALVO_STREAMS_DUPLICATE_WINDOW"},
		{name: "bad route URL", file: "upstream:\n  routes:\n    gpt-4o:\n      base_url: ftp://x\n", key: `upstream.routes["gpt-4o"].base_url`, envVar: "SALVO_UPSTREAM_ROUTES"},
		{name: "bad route URL in the env", env: map[string]string{"SALVO_UPSTREAM_ROUTES": `{"m": {"base_url": "nope"}}`}, key: `upstream.routes["m"].base_url`, envVar: "SALVO_UPSTREAM_ROUTES"},
		{name: "unknown route field", file: "upstream:\n  routes:\n    m:\n      base_ur: http://x\n", key: "upstream.routes", envVar: "SALVO_UPSTREAM_ROUTES"},
		{name: "bad default URL by flag", args: []string{"-upstream-url", "http://user:pw@x"}, key: "upstream.default.base_url", envVar: "SALVO_UPSTREAM_DEFAULT_BASE_URL"},
		{name: "bad key variable name", file: "upstream:\n  default:\n    base_url: http://x\n    api_key_env: 'NOT A NAME'\n", key: "upstream.default.api_key_env", envVar: "SALVO_UPSTREAM_DEFAULT_API_KEY_ENV"},
		{name: "model limit", file: "concurrency:\n  models:\n    gpt-4o: 0\n", key: `concurrency.models["gpt-4o"]`, envVar: "SALVO_CONCURRENCY_MODELS"},
		{name: "negative budget", file: "rate_limits:\n  budgets:\n    gpt-4o: {tokens_per_minute: -5}\n", key: `rate_limits.budgets["gpt-4o"].tokens_per_minute`, envVar: "SALVO_RATE_LIMITS_BUDGETS"},
		{name: "fallback share above one", env: map[string]string{"SALVO_RATE_LIMITS_FALLBACK_SHARE": "1.5"}, key: "rate_limits.fallback_share", envVar: "SALVO_RATE_LIMITS_FALLBACK_SHARE"},
		{name: "adaptive backoff", file: "rate_limits:\n  adaptive:\n    backoff: 1\n", key: "rate_limits.adaptive.backoff", envVar: "SALVO_RATE_LIMITS_ADAPTIVE_BACKOFF"},
		{name: "global limit in the env", env: map[string]string{"SALVO_CONCURRENCY_GLOBAL": "{gpt-4o: -1}"}, key: `concurrency.global["gpt-4o"]`, envVar: "SALVO_CONCURRENCY_GLOBAL"},
		{name: "retry jitter", file: "retry:\n  jitter: 1.5\n", key: "retry.jitter", envVar: "SALVO_RETRY_JITTER"},
		{name: "retry factor not a number", env: map[string]string{"SALVO_RETRY_BACKOFF_FACTOR": "double"}, key: "retry.backoff_factor", envVar: "SALVO_RETRY_BACKOFF_FACTOR"},
		{name: "extra status", file: "retry:\n  extra_retriable_statuses: [200]\n", key: "retry.extra_retriable_statuses[0]", envVar: "SALVO_RETRY_EXTRA_RETRIABLE_STATUSES"},
		{name: "extra status in the env", env: map[string]string{"SALVO_RETRY_EXTRA_RETRIABLE_STATUSES": "499,x"}, key: "retry.extra_retriable_statuses", envVar: "SALVO_RETRY_EXTRA_RETRIABLE_STATUSES"},
		{name: "env concurrency not a number", env: map[string]string{"SALVO_CONCURRENCY_DEFAULT": "many"}, key: "concurrency.default", envVar: "SALVO_CONCURRENCY_DEFAULT"},
		{name: "concurrency zero", file: "concurrency:\n  default: 0\n", key: "concurrency.default", envVar: "SALVO_CONCURRENCY_DEFAULT"},
		{name: "bad flag value", args: []string{"-concurrency", "x"}, key: "concurrency.default", envVar: "SALVO_CONCURRENCY_DEFAULT"},
		{name: "redis url", env: map[string]string{"SALVO_REDIS_URL": "mysql://u:secret@db"}, key: "redis_url", envVar: "SALVO_REDIS_URL"},
		{name: "a list where a value belongs", file: "nats_url: [a, b]\n", key: "nats_url", envVar: "SALVO_NATS_URL"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			args := tc.args
			if tc.file != "" {
				args = append([]string{"-config", writeFile(t, tc.file)}, args...)
			}
			_, err := config.Load(args, envOf(tc.env))
			require.Error(t, err)
			require.Contains(t, err.Error(), tc.key+" (")
			require.Contains(t, err.Error(), tc.envVar)
			require.NotContains(t, err.Error(), "secret", "values that may hold passwords are not echoed")
			var ce *config.Error
			require.ErrorAs(t, err, &ce)
		})
	}
}

// Some mistakes have no variable: a key that does not exist, a flag that
// does not exist.
func TestLoadRejectsUnknownKeysAndFlags(t *testing.T) {
	t.Parallel()
	_, err := config.Load([]string{"-config", writeFile(t, "concurency:\n  default: 3\n")}, envOf(nil))
	require.ErrorContains(t, err, "concurency: line 1: unknown key")
	_, err = config.Load([]string{"-config", writeFile(t, "streams:\n  ack_wiat: 3s\n")}, envOf(nil))
	require.ErrorContains(t, err, "streams.ack_wiat: line 2: unknown key")
	_, err = config.Load([]string{"-config", writeFile(t, "streams: 3\n")}, envOf(nil))
	require.ErrorContains(t, err, "streams: line 1: must be a mapping")
	_, err = config.Load([]string{"-concurrence", "3"}, envOf(nil))
	require.ErrorContains(t, err, "-concurrence")
	_, err = config.Load([]string{"-config", filepath.Join(t.TempDir(), "missing.yaml")}, envOf(nil))
	require.ErrorContains(t, err, "config file")
}

// Validate errors of the packages still match their sentinels through the
// *config.Error.
func TestErrorsKeepThePackagesSentinels(t *testing.T) {
	t.Parallel()
	_, err := config.Load(nil, envOf(map[string]string{"SALVO_STREAMS_ACK_WAIT": "1ms"}))
	require.ErrorIs(t, err, queue.ErrInvalidConfig)
	require.EqualError(t, err, "streams.ack_wait (SALVO_STREAMS_ACK_WAIT): 1ms must be at least 100ms")
}

func TestLoadHelp(t *testing.T) {
	t.Parallel()
	for _, arg := range []string{"-h", "-help", "--help"} {
		_, err := config.Load([]string{arg}, envOf(nil))
		require.ErrorIs(t, err, config.ErrHelp, arg)
	}
}

func TestLoadExampleConfig(t *testing.T) {
	t.Parallel()
	s, err := config.Load([]string{"-config", "../../deployments/worker.example.yaml"}, envOf(nil))
	require.NoError(t, err)
	require.Equal(t, 128, s.Worker.Concurrency.Limit("gpt-4o"))
	require.Equal(t, 64, s.Worker.Concurrency.Limit("other"))
	require.Equal(t, 512, s.Worker.Concurrency.Global["gpt-4o"])
	require.Equal(t, []int{499}, s.RetryPolicy().ExtraRetriableStatuses)
	require.Equal(t, queue.FileStorage, s.QueueConfig().Storage)

	_, err = s.HTTPConfig(envOf(nil))
	require.EqualError(t, err, "upstream.default.api_key_env (SALVO_UPSTREAM_DEFAULT_API_KEY_ENV, flag -upstream-key-env): environment variable OPENAI_API_KEY is empty or not set")
	_, err = s.Resolve(envOf(nil))
	require.ErrorContains(t, err, "OPENAI_API_KEY")

	hc, err := s.HTTPConfig(envOf(map[string]string{"OPENAI_API_KEY": "sk-test-secret"}))
	require.NoError(t, err)
	require.Equal(t, "https://api.openai.com", hc.Default.BaseURL)
	require.Equal(t, "sk-test-secret", hc.Default.APIKey.Reveal())
	require.Contains(t, hc.Routes, "meta-llama/Llama-3.1-8B-Instruct", "model names keep their dots")
	require.Equal(t, int64(64<<20), hc.MaxResponseBytes)
	require.Equal(t, 10*time.Second, hc.Timeouts.Connect)
	require.Equal(t, 60*time.Second, hc.Timeouts.UploadStall)
}

func TestRetrySettingsExplicitZero(t *testing.T) {
	t.Parallel()
	s, err := config.Load([]string{"-config", writeFile(t, "retry:\n  max_retries: 0\n  extra_retriable_statuses: []\n")}, envOf(nil))
	require.NoError(t, err)
	p := s.RetryPolicy()
	require.Equal(t, 0, p.MaxRetries, "an explicit 0 disables retries")
	require.Empty(t, p.ExtraRetriableStatuses, "an explicit empty list adds no statuses")
	require.False(t, p.IsRetriableStatus(499))
	require.Equal(t, 0, s.WorkerConfig().Retry.MaxRetries)
	hc, err := s.HTTPConfig(envOf(nil))
	require.NoError(t, err)
	require.Equal(t, 0, hc.Retry.MaxRetries, "the upstream client classifies with the same policy")

	s, err = config.Load(nil, envOf(map[string]string{"SALVO_RETRY_MAX_RETRIES": "0", "SALVO_RETRY_EXTRA_RETRIABLE_STATUSES": "[]"}))
	require.NoError(t, err)
	require.Equal(t, 0, s.RetryPolicy().MaxRetries, "an explicit 0 from the environment too")
	require.Empty(t, s.RetryPolicy().ExtraRetriableStatuses)

	s, err = config.Load(nil, envOf(nil))
	require.NoError(t, err)
	require.Equal(t, 1000, s.RetryPolicy().MaxRetries)
	require.True(t, s.RetryPolicy().IsRetriableStatus(499))
}

// JetStream counts every delayed nak as a delivery: the derived MaxDeliver
// leaves room for every retry the policy allows, and the heartbeat defaults
// to a third of the shorter keep-alive budget.
func TestDerivedDeliveryBoundAndHeartbeat(t *testing.T) {
	t.Parallel()
	s, err := config.Load(nil, envOf(nil))
	require.NoError(t, err)
	require.Equal(t, 1000+1+5+50, s.QueueConfig().MaxDeliver)
	require.Equal(t, 2*time.Second, s.WorkerConfig().HeartbeatInterval, "a third of the 6s defaults")

	s, err = config.Load([]string{"-config", writeFile(t, "retry:\n  max_retries: -1\nlease:\n  ttl: 3s\n")}, envOf(nil))
	require.NoError(t, err)
	require.Equal(t, 100_000, s.QueueConfig().MaxDeliver, "no retry limit: only the deadline bounds deliveries")
	require.Equal(t, time.Second, s.WorkerConfig().HeartbeatInterval, "the shorter lease sets it")

	s, err = config.Load(nil, envOf(map[string]string{"SALVO_STREAMS_MAX_DELIVER": "5000", "SALVO_HEARTBEAT_INTERVAL": "2s"}))
	require.NoError(t, err)
	require.Equal(t, 5000, s.QueueConfig().MaxDeliver, "an explicit bound is kept")
	require.Equal(t, 2*time.Second, s.WorkerConfig().HeartbeatInterval)
}
