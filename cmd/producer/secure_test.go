package main

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/salvo-run/salvo/internal/config"
	"github.com/salvo-run/salvo/internal/mockupstream"
	"github.com/salvo-run/salvo/internal/testnats"
	"github.com/salvo-run/salvo/internal/testredis"
	"github.com/salvo-run/salvo/internal/testtls"
	"github.com/salvo-run/salvo/internal/testupstream"
	"github.com/salvo-run/salvo/pkg/httpclient"
)

const secureRedisPassword = "redis-Pa55-secure-e2e"

// A worker and the producer both reach a nats-server that requires a
// credentials file and TLS with client certificates; the worker's Redis
// requires an ACL user's password, and TLS when redis-server has it. A
// batch submitted with the nats CLI's variables completes and its results
// arrive; the producer with another operator's creds, without a client
// certificate or trusting another CA is refused, naming the flag to check.
func TestSubmitOverCredsAndMutualTLSToASecuredWorker(t *testing.T) {
	t.Parallel()
	files := testtls.New(t)
	op := testnats.NewOperator(t)
	ns := testnats.New(t, testnats.WithTLS(files.ServerConfig(t)), op.Option())
	// Redis speaks TLS when the redis-server on PATH can; its ACL user
	// and password are checked either way.
	redisOpts := []testredis.Option{testredis.WithUser("salvo", secureRedisPassword)}
	if testredis.TLSSupported() {
		redisOpts = append(redisOpts, testredis.WithTLS(files))
	}
	rd := testredis.New(t, redisOpts...)
	mock := testupstream.New(t, mockupstream.Options{})

	s := config.Default()
	s.NATSURL = ns.URL()
	s.NATS.Creds = op.Creds(t)
	s.NATS.TLS.CA, s.NATS.TLS.Cert, s.NATS.TLS.Key = files.CA, files.ClientCert, files.ClientKey
	s.RedisURL = rd.URL()
	s.Redis.Username, s.Redis.Password = "salvo", secureRedisPassword
	if testredis.TLSSupported() {
		s.Redis.TLS = s.NATS.TLS
	}
	s.Prefix = rd.Prefix
	s.Streams.DiscoveryInterval = 100 * time.Millisecond
	s.Streams.FetchExpiry = time.Second
	s.Worker.ShutdownGrace = time.Second
	s.Upstream.Default = &httpclient.Route{BaseURL: mock.URL()}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	p, err := config.Start(ctx, s, config.Options{})
	require.NoError(t, err)
	defer func() { require.NoError(t, p.Stop(ctx)) }()

	env := map[string]string{
		"NATS_URL": ns.URL(), "NATS_CREDS": op.Creds(t), // a user of its own
		"NATS_CA": files.CA, "NATS_CERT": files.ClientCert, "NATS_KEY": files.ClientKey,
		"SALVO_PREFIX": rd.Prefix,
	}
	in := writeInput(t, 5)
	out := filepath.Join(t.TempDir(), "out.jsonl")
	r := cli(t, env, "submit", "--batch-id", "secure-1", "--wait", "--interval", "20ms", "--output", out, in)
	require.Equal(t, exitOK, r.code, r.err)
	require.Contains(t, r.err, "batch secure-1 completed in")
	require.Equal(t, 5, countFileLines(t, out), "every result arrived")

	other := testtls.New(t)
	for name, tc := range map[string]struct {
		change map[string]string
		want   string
	}{
		"creds of another operator": {map[string]string{"NATS_CREDS": testnats.NewOperator(t).Creds(t)},
			"Authorization Violation (check --creds (NATS_CREDS))"},
		"no client certificate": {map[string]string{"NATS_CERT": "", "NATS_KEY": ""},
			"(check --tlscert (NATS_CERT): the server refused the client certificate, or wants one)"},
		"another CA": {map[string]string{"NATS_CA": other.CA},
			"(check --tlsca (NATS_CA): the server's certificate is not signed by the trusted CA)"},
	} {
		bad := map[string]string{}
		for k, v := range env {
			bad[k] = v
		}
		for k, v := range tc.change {
			bad[k] = v
		}
		r := cli(t, bad, "list")
		require.Equal(t, exitUnreachable, r.code, name)
		require.Contains(t, r.err, "cannot reach NATS at "+ns.URL(), name)
		require.Contains(t, r.err, tc.want, name)
	}
	r = cli(t, env, "--tlscert", files.ClientCert, "--tlskey", "", "list")
	require.Equal(t, exitUsage, r.code)
	require.Contains(t, r.err, "--tlskey (NATS_KEY): is required with a client certificate")
}
