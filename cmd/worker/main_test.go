package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/salvo-run/salvo/internal/testbin"
	"github.com/salvo-run/salvo/internal/testleak"
	"github.com/salvo-run/salvo/internal/testnats"
	"github.com/salvo-run/salvo/internal/testredis"
)

func TestMain(m *testing.M) {
	testleak.VerifyTestMainThen(m, testbin.Remove)
}

// runBinary runs the worker with args and env (and nothing of the test's
// own SALVO_* environment) and returns its exit code and output.
func runBinary(t *testing.T, env []string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, testbin.Worker(t), args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SALVO_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return exit.ExitCode(), out.String(), errb.String()
	}
	require.NoError(t, err)
	return 0, out.String(), errb.String()
}

var allFlags = []string{"-config", "-nats-url", "-redis-url", "-prefix", "-http-addr", "-log-level",
	"-concurrency", "-shutdown-grace", "-upstream-url", "-upstream-key-env"}

func TestHelpPrintsUsageAndSucceeds(t *testing.T) {
	t.Parallel()
	for _, arg := range []string{"-h", "-help", "--help"} {
		var out, errb bytes.Buffer
		require.NoError(t, run([]string{arg}, &out, &errb, func(string) string { return "" }), arg)
		require.Empty(t, errb.String())
		for _, f := range allFlags {
			require.Contains(t, out.String(), "  "+f+" ", arg)
		}
		require.Contains(t, out.String(), "SALVO_CONFIG")
		require.Contains(t, out.String(), "defaults < YAML file")
		require.Contains(t, out.String(), "SALVO_STREAMS_ACK_WAIT")
		require.Contains(t, out.String(), "SALVO_QUEUE_LAG_INTERVAL")
		require.Contains(t, out.String(), "OTEL_TRACES_EXPORTER=otlp")
	}

	code, stdout, stderr := runBinary(t, nil, "--help")
	require.Equal(t, 0, code, stderr)
	require.Contains(t, stdout, "Usage: worker")
	for _, f := range allFlags {
		require.Contains(t, stdout, "  "+f+" ")
	}
	require.NotContains(t, stderr, "help requested")
	require.Contains(t, stdout, "SALVO_HTTP_ADDR=:8081", "the image's listener choice is told in -help")
}

func TestVersionPrintsTheBuildAndSucceeds(t *testing.T) {
	t.Parallel()
	for _, arg := range []string{"-version", "--version"} {
		var out, errb bytes.Buffer
		require.NoError(t, run([]string{arg}, &out, &errb, func(string) string { return "" }), arg)
		require.Regexp(t, `^worker \S+\n$`, out.String(), arg)
		require.Empty(t, errb.String())
	}
}

// A route whose key variable is empty stops the worker at start, with the
// key and its variable named, before it creates a stream or a Redis key.
func TestMissingKeyVariableExitsBeforeProvisioning(t *testing.T) {
	t.Parallel()
	nats := testnats.New(t)
	redis := testredis.New(t)
	cfg := filepath.Join(t.TempDir(), "worker.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte("upstream:\n  default:\n    base_url: http://127.0.0.1:9\n    api_key_env: SALVO_TEST_MISSING_KEY\n"), 0o600))

	code, _, stderr := runBinary(t, []string{
		"SALVO_NATS_URL=" + nats.URL(), "SALVO_REDIS_URL=" + redis.URL(), "SALVO_PREFIX=" + redis.Prefix,
		"SALVO_HTTP_ADDR=127.0.0.1:0",
	}, "-config", cfg)
	require.NotEqual(t, 0, code)
	require.Contains(t, stderr, "upstream.default.api_key_env (SALVO_UPSTREAM_DEFAULT_API_KEY_ENV")
	require.Contains(t, stderr, "SALVO_TEST_MISSING_KEY is empty or not set")

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	js, err := jetstream.New(nats.Connect())
	require.NoError(t, err)
	names := js.StreamNames(ctx)
	var streams []string
	for n := range names.Name() {
		streams = append(streams, n)
	}
	require.NoError(t, names.Err())
	require.Empty(t, streams, "no stream was created")
	keys, err := redis.Keys(ctx)
	require.NoError(t, err)
	require.Empty(t, keys, "no Redis key was written")
}

func TestInvalidSettingExitsNamingKeyAndVariable(t *testing.T) {
	t.Parallel()
	code, _, stderr := runBinary(t, []string{"SALVO_UPSTREAM_CONNECT_TIMEOUT=-1s"})
	require.Equal(t, 1, code)
	require.Contains(t, stderr, "upstream.connect_timeout (SALVO_UPSTREAM_CONNECT_TIMEOUT): must be positive")
}

// -apply-streams creates what is missing, changes the streams to its
// settings, prints the changes and exits; a worker started with other
// settings afterwards refuses to start, naming the setting.
func TestApplyStreamsChangesTheStreamsAndExits(t *testing.T) {
	t.Parallel()
	nats := testnats.New(t)
	env := map[string]string{"SALVO_NATS_URL": nats.URL(), "SALVO_PREFIX": "applytest", "SALVO_HTTP_ADDR": "127.0.0.1:0"}
	getenv := func(k string) string { return env[k] }

	var out bytes.Buffer
	require.NoError(t, run([]string{"-apply-streams"}, &out, io.Discard, getenv))
	require.Contains(t, out.String(), "(0 change(s))", "a fresh server: everything created, nothing changed")

	env["SALVO_STREAMS_RESULTS_MAX_AGE"] = "1h"
	out.Reset()
	require.NoError(t, run([]string{"-apply-streams"}, &out, io.Discard, getenv))
	require.Contains(t, out.String(), "changed stream APPLYTEST_RESULTS: max_age 168h0m0s -> 1h0m0s")

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	js, err := jetstream.New(nats.Connect())
	require.NoError(t, err)
	s, err := js.Stream(ctx, "APPLYTEST_RESULTS")
	require.NoError(t, err)
	require.Equal(t, time.Hour, s.CachedInfo().Config.MaxAge)

	var help bytes.Buffer
	require.NoError(t, run([]string{"-help"}, &help, io.Discard, getenv))
	require.Contains(t, help.String(), "  -apply-streams\n")
}
