package worker_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/salvo-run/salvo/pkg/worker"
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
	path := writeFile(t, "concurrency:\n  default: 10\nprefix: fromfile\nshutdown_grace: 5s\n")

	s, err := worker.Load([]string{"-config", path}, envOf(nil))
	require.NoError(t, err)
	require.Equal(t, 10, s.Concurrency.Default, "file overrides default")
	require.Equal(t, "fromfile", s.Prefix)
	require.Equal(t, 5*time.Second, s.ShutdownGrace)
	require.Equal(t, worker.NATSURLDefault, s.NATSURL, "unset keys keep their default")

	env := envOf(map[string]string{"SALVO_CONCURRENCY": "20", "SALVO_PREFIX": "fromenv", "SALVO_CONFIG": path})
	s, err = worker.Load(nil, env)
	require.NoError(t, err)
	require.Equal(t, 20, s.Concurrency.Default, "env overrides file (file found through SALVO_CONFIG)")
	require.Equal(t, "fromenv", s.Prefix)

	s, err = worker.Load([]string{"-concurrency", "30", "-prefix", "fromflag"}, env)
	require.NoError(t, err)
	require.Equal(t, 30, s.Concurrency.Default, "flag overrides env")
	require.Equal(t, "fromflag", s.Prefix)
	require.Equal(t, 5*time.Second, s.ShutdownGrace, "file value survives where nothing overrides it")
}

func TestLoadRejectsInvalidNamingTheField(t *testing.T) {
	cases := []struct {
		name, file string
		args       []string
		env        map[string]string
		want       string
	}{
		{name: "unknown key", file: "concurency:\n  default: 3\n", want: "concurency"},
		{name: "log level", file: "log_level: loud\n", want: "log_level"},
		{name: "model limit", file: "concurrency:\n  models:\n    gpt-4o: 0\n", want: `concurrency.models["gpt-4o"]`},
		{name: "retry jitter", file: "retry:\n  jitter: 1.5\n", want: "retry.jitter"},
		{name: "extra status", file: "retry:\n  extra_retriable_statuses: [200]\n", want: "retry.extra_retriable_statuses[0]"},
		{name: "storage", file: "streams:\n  storage: tape\n", want: "streams.storage"},
		{name: "prefix", file: "prefix: a.b\n", want: "prefix"},
		{name: "max deliver below the retry budget", file: "streams:\n  max_deliver: 100\n", want: "streams.max_deliver"},
		{name: "heartbeat outside ack wait", file: "streams:\n  ack_wait: 6s\nheartbeat_interval: 5s\n", want: "heartbeat_interval"},
		{name: "ack wait too short", file: "streams:\n  ack_wait: 1ms\n", want: "AckWait"},
		{name: "env concurrency", env: map[string]string{"SALVO_CONCURRENCY": "many"}, want: "SALVO_CONCURRENCY"},
		{name: "bad flag", args: []string{"-concurrency", "x"}, want: "concurrency"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			args := tc.args
			if tc.file != "" {
				args = append([]string{"-config", writeFile(t, tc.file)}, args...)
			}
			_, err := worker.Load(args, envOf(tc.env))
			require.Error(t, err)
			require.Contains(t, err.Error(), tc.want)
		})
	}
}

func TestLoadExampleConfig(t *testing.T) {
	s, err := worker.Load([]string{"-config", "../../deployments/worker.example.yaml"}, envOf(nil))
	require.NoError(t, err)
	require.Equal(t, 128, s.Concurrency.Limit("gpt-4o"))
	require.Equal(t, 64, s.Concurrency.Limit("other"))
	require.Equal(t, 512, s.Concurrency.Global["gpt-4o"])
	require.Equal(t, []int{499}, s.Retry.Policy().ExtraRetriableStatuses)

	_, err = s.HTTPConfig(envOf(nil))
	require.ErrorContains(t, err, "upstream.default.api_key_env: environment variable OPENAI_API_KEY is empty")

	hc, err := s.HTTPConfig(envOf(map[string]string{"OPENAI_API_KEY": "sk-test-secret"}))
	require.NoError(t, err)
	require.Equal(t, "https://api.openai.com", hc.Default.BaseURL)
	require.Contains(t, hc.Routes, "meta-llama/Llama-3.1-8B-Instruct")
	require.Equal(t, int64(64<<20), hc.MaxResponseBytes)
}

func TestRetrySettingsExplicitZero(t *testing.T) {
	s, err := worker.Load([]string{"-config", writeFile(t, "retry:\n  max_retries: 0\n  extra_retriable_statuses: []\n")}, envOf(nil))
	require.NoError(t, err)
	p := s.Retry.Policy()
	require.Equal(t, 0, p.MaxRetries, "an explicit 0 disables retries")
	require.Empty(t, p.ExtraRetriableStatuses, "an explicit empty list adds no statuses")
	require.False(t, p.IsRetriableStatus(499))

	s, err = worker.Load(nil, envOf(nil))
	require.NoError(t, err)
	require.Equal(t, 1000, s.Retry.Policy().MaxRetries)
	require.True(t, s.Retry.Policy().IsRetriableStatus(499))
}

// JetStream counts every delayed nak as a delivery: the derived MaxDeliver
// leaves room for every retry the policy allows, and the heartbeat defaults
// to a third of the shorter keep-alive budget.
func TestDerivedDeliveryBoundAndHeartbeat(t *testing.T) {
	s, err := worker.Load(nil, envOf(nil))
	require.NoError(t, err)
	require.Equal(t, 1000+1+5+50, s.QueueConfig().MaxDeliver)
	require.Equal(t, 10*time.Second, s.EngineConfig("").HeartbeatInterval)

	s, err = worker.Load([]string{"-config", writeFile(t, "retry:\n  max_retries: -1\nlease:\n  ttl: 9s\n")}, envOf(nil))
	require.NoError(t, err)
	require.Equal(t, 100_000, s.QueueConfig().MaxDeliver, "no retry limit: only the deadline bounds deliveries")
	require.Equal(t, 3*time.Second, s.EngineConfig("").HeartbeatInterval)
}
