package config_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/salvo-run/salvo/internal/config"
	"github.com/salvo-run/salvo/internal/mockupstream"
	"github.com/salvo-run/salvo/internal/testlog"
	"github.com/salvo-run/salvo/internal/testnats"
	"github.com/salvo-run/salvo/internal/testredis"
	"github.com/salvo-run/salvo/internal/testtls"
	"github.com/salvo-run/salvo/internal/testupstream"
	"github.com/salvo-run/salvo/pkg/httpclient"
)

// The secrets of the secure deployment: none may show in an error or a log.
const (
	redisUserPassword    = "redis-acl-Pa55-7f3e"
	redisDefaultPassword = "redis-default-Pa55-91ab"
	wrongPassword        = "wrong-Pa55-c0ffee"
)

// secureDeployment is a nats-server in operator mode requiring TLS with
// client certificates and a redis-server with an ACL user and a password
// for the default user, speaking TLS only when its build has TLS
// (redisTLS): the NATS and password checks run either way.
type secureDeployment struct {
	nats     *testnats.Server
	redis    *testredis.Server
	redisTLS bool
	files    testtls.Files
	creds    string
	pwFile   string
	env      map[string]string
}

func newSecureDeployment(t *testing.T) *secureDeployment {
	t.Helper()
	files := testtls.New(t)
	op := testnats.NewOperator(t)
	redisOpts := []testredis.Option{testredis.WithUser("salvo", redisUserPassword), testredis.WithPassword(redisDefaultPassword)}
	redisTLS := testredis.TLSSupported()
	if redisTLS {
		redisOpts = append(redisOpts, testredis.WithTLS(files))
	} else {
		t.Log("the redis-server on PATH has no TLS: Redis runs in plain text, its TLS cases are skipped")
	}
	d := &secureDeployment{
		nats:     testnats.New(t, testnats.WithTLS(files.ServerConfig(t)), op.Option()),
		redis:    testredis.New(t, redisOpts...),
		redisTLS: redisTLS,
		files:    files,
		creds:    op.Creds(t),
	}
	d.pwFile = filepath.Join(t.TempDir(), "redis-password")
	require.NoError(t, os.WriteFile(d.pwFile, []byte(redisUserPassword+"\n"), 0o600))
	mock := testupstream.New(t, mockupstream.Options{})
	// As a deployment gives them: every setting by its variable, the
	// Redis password as a mounted file.
	d.env = map[string]string{
		"SALVO_NATS_URL":            d.nats.URL(),
		"SALVO_NATS_CREDS":          d.creds,
		"SALVO_NATS_TLS_CA":         files.CA,
		"SALVO_NATS_TLS_CERT":       files.ClientCert,
		"SALVO_NATS_TLS_KEY":        files.ClientKey,
		"SALVO_REDIS_URL":           d.redis.URL(),
		"SALVO_REDIS_USERNAME":      "salvo",
		"SALVO_REDIS_PASSWORD_FILE": d.pwFile,
		"SALVO_PREFIX":              d.redis.Prefix,
		"SALVO_UPSTREAM_URL":        mock.URL(),
		"TEST_UPSTREAM_KEY":         "sk-test",
		"SALVO_UPSTREAM_KEY_ENV":    "TEST_UPSTREAM_KEY",
	}
	if redisTLS {
		d.env["SALVO_REDIS_TLS_CA"] = files.CA
		d.env["SALVO_REDIS_TLS_CERT"] = files.ClientCert
		d.env["SALVO_REDIS_TLS_KEY"] = files.ClientKey
	}
	return d
}

// settings are what Load makes of the environment, with short timers.
func (d *secureDeployment) settings(t *testing.T) config.Settings {
	t.Helper()
	s, err := config.Load(nil, envOf(d.env))
	require.NoError(t, err)
	s.Streams.DiscoveryInterval = 100 * time.Millisecond
	s.Streams.FetchExpiry = time.Second
	s.Worker.ShutdownGrace = time.Second
	return s
}

// streams lists the streams, through a connection of its own.
func (d *secureDeployment) streams(t *testing.T) []string {
	t.Helper()
	return streamNames(t, d.nats.Connect(nats.UserCredentials(d.creds), nats.Secure(d.files.ClientConfig(t))))
}

// requireNoSecret fails when text holds a password or the creds' seed.
func (d *secureDeployment) requireNoSecret(t *testing.T, text, what string) {
	t.Helper()
	data, err := os.ReadFile(d.creds)
	require.NoError(t, err)
	secrets := []string{redisUserPassword, redisDefaultPassword, wrongPassword}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "SU") { // the user's nkey seed
			secrets = append(secrets, line)
		}
	}
	require.Len(t, secrets, 4, "the creds file has a seed")
	for _, s := range secrets {
		require.NotContains(t, text, s, "%s shows a secret", what)
	}
}

// A worker configured by SALVO_ variables connects to NATS with a
// credentials file over mutual TLS and to Redis as an ACL user over
// mutual TLS (password from a file), provisions its streams and runs;
// its log says both connections are TLS and shows no secret.
func TestStartConnectsWithCredsTLSAndARedisACLUser(t *testing.T) {
	t.Parallel()
	d := newSecureDeployment(t)
	var logs testlog.Buffer
	log := zerolog.New(&logs)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	p, err := config.Start(ctx, d.settings(t), config.Options{Logger: &log, Getenv: envOf(d.env)})
	require.NoError(t, err)
	defer func() { require.NoError(t, p.Stop(ctx)) }()
	require.NotEmpty(t, d.streams(t), "the streams are provisioned over the secure connection")
	who, err := p.Redis.Do(ctx, "ACL", "WHOAMI").Text()
	require.NoError(t, err)
	require.Equal(t, "salvo", who, "the worker is the ACL user")
	require.Eventually(t, func() bool { return p.Worker.Healthy() == nil }, 10*time.Second, 20*time.Millisecond)
	require.Contains(t, logs.String(), `"nats_tls":true`)
	require.Contains(t, logs.String(), fmt.Sprintf(`"redis_tls":%t`, d.redisTLS))
	require.Contains(t, logs.String(), `"message":"connected"`)
	d.requireNoSecret(t, logs.String(), "the log")
}

// Each refusal — by NATS or Redis, of credentials or certificates — fails
// the start naming what was refused and the setting to check, with no
// secret in the error or the log, and before any stream exists.
func TestStartRefusalsNameTheSettingNotTheSecret(t *testing.T) {
	t.Parallel()
	d := newSecureDeployment(t)
	other := testtls.New(t)
	wrongFile := filepath.Join(t.TempDir(), "wrong")
	require.NoError(t, os.WriteFile(wrongFile, []byte(wrongPassword), 0o600))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	scheme, _, _ := strings.Cut(d.redis.URL(), "://")
	for name, tc := range map[string]struct {
		change   func(e map[string]string)
		want     []string
		redisTLS bool // the case needs a TLS Redis
	}{
		"creds of another operator": {
			change: func(e map[string]string) { e["SALVO_NATS_CREDS"] = testnats.NewOperator(t).Creds(t) },
			want: []string{"nats_url " + d.nats.URL() + ": connect: nats: Authorization Violation",
				"(check nats.creds (SALVO_NATS_CREDS))"},
		},
		"no client certificate for NATS": {
			change: func(e map[string]string) { delete(e, "SALVO_NATS_TLS_CERT"); delete(e, "SALVO_NATS_TLS_KEY") },
			want:   []string{"(check nats.tls.cert (SALVO_NATS_TLS_CERT): the server refused the client certificate, or wants one)"},
		},
		"NATS certificate of another CA": {
			change: func(e map[string]string) { e["SALVO_NATS_TLS_CA"] = other.CA },
			want: []string{"x509: certificate signed by unknown authority",
				"(check nats.tls.ca (SALVO_NATS_TLS_CA): the server's certificate is not signed by the trusted CA)"},
		},
		"wrong Redis password": {
			change: func(e map[string]string) { e["SALVO_REDIS_PASSWORD_FILE"] = wrongFile },
			want: []string{"redis: ping " + d.redis.Addr + ": WRONGPASS",
				"(check redis.password (SALVO_REDIS_PASSWORD); redis.username (SALVO_REDIS_USERNAME); redis_url"},
		},
		"no Redis password": {
			change: func(e map[string]string) { delete(e, "SALVO_REDIS_PASSWORD_FILE"); delete(e, "SALVO_REDIS_USERNAME") },
			want:   []string{"NOAUTH", "(check redis.password (SALVO_REDIS_PASSWORD)"},
		},
		"wrong Redis password in the URL": {
			change: func(e map[string]string) {
				delete(e, "SALVO_REDIS_PASSWORD_FILE")
				delete(e, "SALVO_REDIS_USERNAME")
				e["SALVO_REDIS_URL"] = scheme + "://salvo:" + wrongPassword + "@" + d.redis.Addr
			},
			want: []string{"redis: ping " + d.redis.Addr + ": WRONGPASS", "redis_url (SALVO_REDIS_URL, flag -redis-url)"},
		},
		"Redis certificate of another CA": {
			change:   func(e map[string]string) { e["SALVO_REDIS_TLS_CA"] = other.CA },
			want:     []string{"x509", "(check redis.tls.ca (SALVO_REDIS_TLS_CA))"},
			redisTLS: true,
		},
		"plain text to a TLS Redis": {
			change: func(e map[string]string) {
				for _, k := range []string{"SALVO_REDIS_TLS_CA", "SALVO_REDIS_TLS_CERT", "SALVO_REDIS_TLS_KEY"} {
					delete(e, k)
				}
				e["SALVO_REDIS_URL"] = "redis://" + d.redis.Addr
			},
			want:     []string{"(check redis.tls.enabled (SALVO_REDIS_TLS_ENABLED))"},
			redisTLS: true,
		},
		"no client certificate for Redis": {
			change:   func(e map[string]string) { delete(e, "SALVO_REDIS_TLS_CERT"); delete(e, "SALVO_REDIS_TLS_KEY") },
			want:     []string{"(check redis.tls.cert (SALVO_REDIS_TLS_CERT))"},
			redisTLS: true,
		},
	} {
		if tc.redisTLS && !d.redisTLS {
			t.Logf("%s: skipped, the redis-server on PATH has no TLS", name)
			continue
		}
		env := make(map[string]string, len(d.env))
		for k, v := range d.env {
			env[k] = v
		}
		tc.change(env)
		s, err := config.Load(nil, envOf(env))
		require.NoError(t, err, name)
		var logs testlog.Buffer
		log := zerolog.New(&logs)
		p, err := config.Start(ctx, s, config.Options{Logger: &log, Getenv: envOf(env)})
		require.Nil(t, p, name)
		require.Error(t, err, name)
		for _, w := range tc.want {
			require.Contains(t, err.Error(), w, name)
		}
		d.requireNoSecret(t, err.Error(), name+": the error")
		d.requireNoSecret(t, logs.String(), name+": the log")
	}
	require.Empty(t, d.streams(t), "no refused start created a stream")
}

// A Cluster client (redis.cluster with one configuration endpoint) takes
// the password and TLS (when redis-server has it) too, and a wrong
// password is refused naming it.
func TestRedisClusterTakesPasswordAndTLS(t *testing.T) {
	t.Parallel()
	files := testtls.New(t)
	opts := []testredis.Option{testredis.WithPassword(redisDefaultPassword), testredis.WithCluster()}
	if testredis.TLSSupported() {
		opts = append(opts, testredis.WithTLS(files))
	}
	rd := testredis.New(t, opts...)
	s := addrsSettings(t, rd.Prefix, rd.Addr)
	s.Redis.Cluster = true
	s.Redis.Password = redisDefaultPassword
	if testredis.TLSSupported() {
		s.Redis.TLS.CA, s.Redis.TLS.Cert, s.Redis.TLS.Key = files.CA, files.ClientCert, files.ClientKey
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	p, err := config.Start(ctx, s, config.Options{})
	require.NoError(t, err)
	_, isCluster := p.Redis.(*redis.ClusterClient)
	require.True(t, isCluster, "redis.cluster makes a Cluster client of one address")
	require.NoError(t, p.Redis.Set(ctx, rd.Prefix+":{b}:k", "v", time.Minute).Err(), "the cluster serves the slot")
	require.NoError(t, p.Stop(ctx))

	s.Redis.Password = wrongPassword
	p, err = config.Start(ctx, s, config.Options{})
	require.Nil(t, p)
	require.ErrorContains(t, err, "redis: ping ["+rd.Addr+"]: WRONGPASS")
	require.ErrorContains(t, err, "(check redis.password (SALVO_REDIS_PASSWORD); redis.username (SALVO_REDIS_USERNAME))")
	require.NotContains(t, err.Error(), wrongPassword)
}

// Connection settings that do not go together fail Load naming the key
// as the user wrote it, with no secret in the message.
func TestConnectionSettingsThatDoNotGoTogether(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"SALVO_NATS_TLS_CERT": "c.pem"},
			"nats.tls.key (SALVO_NATS_TLS_KEY): is required with a client certificate"},
		{map[string]string{"SALVO_NATS_USER": "u"}, "nats.user (SALVO_NATS_USER): needs password or password_file"},
		{map[string]string{"SALVO_NATS_CREDS": "a.creds", "SALVO_NATS_TOKEN": wrongPassword},
			"nats.token (SALVO_NATS_TOKEN): and creds are two ways to authenticate"},
		{map[string]string{"SALVO_NATS_URL": ""}, ""}, // the default URL: valid
		{map[string]string{"SALVO_REDIS_USERNAME": "u"},
			"redis.username (SALVO_REDIS_USERNAME): needs redis.password or redis.password_file"},
		{map[string]string{"SALVO_REDIS_PASSWORD": wrongPassword, "SALVO_REDIS_PASSWORD_FILE": "/f"},
			"redis.password_file (SALVO_REDIS_PASSWORD_FILE): set redis.password or redis.password_file, not both"},
		{map[string]string{"SALVO_REDIS_URL": "redis://:" + wrongPassword + "@h:6379", "SALVO_REDIS_PASSWORD": "x"},
			"redis.password (SALVO_REDIS_PASSWORD): redis_url holds a password already"},
		{map[string]string{"SALVO_REDIS_SENTINEL_PASSWORD": wrongPassword},
			"redis.sentinel_password (SALVO_REDIS_SENTINEL_PASSWORD): is for Sentinel"},
		{map[string]string{"SALVO_REDIS_CLUSTER": "true"}, "redis.cluster (SALVO_REDIS_CLUSTER): needs redis_addrs"},
		{map[string]string{"SALVO_REDIS_ADDRS": "h:1", "SALVO_REDIS_MASTER": "m", "SALVO_REDIS_CLUSTER": "true"},
			"redis.cluster (SALVO_REDIS_CLUSTER): and redis_master (Sentinel) are two topologies"},
		{map[string]string{"SALVO_REDIS_ADDRS": "h:1", "SALVO_REDIS_TLS_KEY": "k.pem"},
			"redis.tls.cert (SALVO_REDIS_TLS_CERT): is required with a client private key"},
		{map[string]string{"SALVO_REDIS_URL": "redis://:" + wrongPassword + "@h:x"},
			"redis_url (SALVO_REDIS_URL, flag -redis-url): not a valid redis:// or rediss:// URL (value not shown"},
		{map[string]string{"SALVO_NATS_URL": "nats://bob:" + wrongPassword + "%zz@127.0.0.1:1"},
			"nats_url (SALVO_NATS_URL, flag -nats-url): not a valid URL (value not shown: it may hold a password)"},
	} {
		_, err := config.Load(nil, envOf(tc.env))
		if tc.want == "" {
			require.NoError(t, err, "%v", tc.env)
			continue
		}
		require.ErrorContains(t, err, tc.want, "%v", tc.env)
		require.NotContains(t, err.Error(), wrongPassword)
		var ce *config.Error
		require.ErrorAs(t, err, &ce)
	}
}

// A secret file that cannot be read fails the start naming its key, before
// anything is connected.
func TestAnUnreadableSecretFileNamesItsKey(t *testing.T) {
	t.Parallel()
	s := config.Default()
	s.NATSURL = "nats://127.0.0.1:1" // nothing listens: the file is read first
	s.NATS.User, s.NATS.PasswordFile = "u", filepath.Join(t.TempDir(), "missing")
	s.Upstream.Default = &httpclient.Route{BaseURL: "http://127.0.0.1:1"}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := config.Start(ctx, s, config.Options{Getenv: envOf(nil)})
	require.ErrorContains(t, err, "nats.password_file (SALVO_NATS_PASSWORD_FILE): open ")
	require.ErrorContains(t, err, "no such file or directory")
}

// A nats_url that does not parse fails the start naming nats_url, without
// the URL: the client's own error would quote it, password and all.
func TestStartWithAnUnparsableNATSURLShowsNoPassword(t *testing.T) {
	t.Parallel()
	s := config.Default()
	s.NATSURL = "nats://bob:" + wrongPassword + "%zz@127.0.0.1:1"
	s.Upstream.Default = &httpclient.Route{BaseURL: "http://127.0.0.1:1"}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p, err := config.Start(ctx, s, config.Options{Getenv: envOf(nil)})
	require.Nil(t, p)
	require.ErrorContains(t, err, "nats_url (SALVO_NATS_URL, flag -nats-url): not a valid URL")
	require.NotContains(t, err.Error(), wrongPassword)
}

// The connected line logs the TLS the Redis client really uses: redis_addrs
// wins over redis_url, so a rediss:// redis_url left beside it is not TLS.
func TestConnectedLogSaysTheRedisTLSInUse(t *testing.T) {
	t.Parallel()
	d := newDeployment(t)
	s := d.settings()
	s.RedisAddrs = []string{d.redis.Addr}
	s.RedisURL = "rediss://127.0.0.1:1" // unused
	var logs testlog.Buffer
	log := zerolog.New(&logs)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := config.Start(ctx, s, config.Options{Logger: &log, Getenv: envOf(map[string]string{"TEST_UPSTREAM_KEY": "sk-test"})})
	require.NoError(t, err)
	require.NoError(t, p.Stop(ctx))
	require.Contains(t, logs.String(), `"message":"connected"`)
	require.Contains(t, logs.String(), `"redis_tls":false`)
}

// A TLS client meeting a plain-text Redis is told to check the settings
// that turned TLS on. The server either answers the hello with an error
// line (no TLS record) or waits for the rest of it (the handshake times
// out, here within the start's own deadline): both name them.
func TestTLSToAPlainTextRedisNamesTheTLSSettings(t *testing.T) {
	t.Parallel()
	d := newDeployment(t)
	getenv := envOf(map[string]string{"TEST_UPSTREAM_KEY": "sk-test"})
	start := func(s config.Settings) error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		p, err := config.Start(ctx, s, config.Options{Getenv: getenv})
		require.Nil(t, p)
		t.Log(err)
		return err
	}

	s := d.settings()
	s.RedisURL = "rediss://" + d.redis.Addr
	require.ErrorContains(t, start(s), "(check redis.tls.enabled (SALVO_REDIS_TLS_ENABLED); redis_url (SALVO_REDIS_URL, flag -redis-url))")

	s = d.settings()
	s.RedisAddrs = []string{d.redis.Addr}
	s.Redis.TLS.Enabled = true
	require.ErrorContains(t, start(s), "(check redis.tls.enabled (SALVO_REDIS_TLS_ENABLED)")
}

// addrsSettings are a worker's settings for a Redis reached through
// redis_addrs, on a NATS and a mock upstream of their own; prefix
// namespaces the run.
func addrsSettings(t *testing.T, prefix string, addrs ...string) config.Settings {
	t.Helper()
	s := config.Default()
	s.NATSURL = testnats.New(t).URL()
	s.RedisAddrs = addrs
	s.Prefix = prefix
	s.Worker.ShutdownGrace = time.Second
	s.Upstream.Default = &httpclient.Route{BaseURL: testupstream.New(t, mockupstream.Options{}).URL()}
	return s
}
