package natsconn_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"

	"github.com/salvo-run/salvo/internal/connauth"
	"github.com/salvo-run/salvo/internal/natsconn"
	"github.com/salvo-run/salvo/internal/testnats"
	"github.com/salvo-run/salvo/internal/testtls"
	"github.com/salvo-run/salvo/pkg/lifecycle"
)

// secureServer is an embedded nats-server in operator mode that requires
// TLS with a client certificate, and the files a client needs.
type secureServer struct {
	ns    *testnats.Server
	files testtls.Files
	op    *testnats.Operator
	creds string
}

func newSecureServer(t *testing.T) secureServer {
	t.Helper()
	files := testtls.New(t)
	op := testnats.NewOperator(t)
	ns := testnats.New(t, testnats.WithTLS(files.ServerConfig(t)), op.Option())
	return secureServer{ns: ns, files: files, op: op, creds: op.Creds(t)}
}

// config is a client config that the server admits.
func (s secureServer) config() natsconn.Config {
	return natsconn.Config{
		URL:   s.ns.URL(),
		Creds: s.creds,
		TLS:   connauth.TLS{CA: s.files.CA, Cert: s.files.ClientCert, Key: s.files.ClientKey},
	}
}

// A credentials file over TLS with a client certificate connects, and the
// account's JetStream works through the connection.
func TestCredsOverMutualTLSConnects(t *testing.T) {
	t.Parallel()
	s := newSecureServer(t)
	nc, err := s.config().Connect(nats.Name("test"))
	require.NoError(t, err)
	defer nc.Close()
	state, err := nc.TLSConnectionState()
	require.NoError(t, err, "the connection is TLS")
	require.NotEmpty(t, state.PeerCertificates)
	js, err := nc.JetStream()
	require.NoError(t, err)
	_, err = js.AddStream(&nats.StreamConfig{Name: "S", Subjects: []string{"s.>"}})
	require.NoError(t, err, "JetStream is enabled for the creds' account")
}

// Every way the server refuses a client is a *ConnectError naming the
// setting to check, and no error holds the seed of the creds file.
func TestRefusedConnectionsNameTheSetting(t *testing.T) {
	t.Parallel()
	s := newSecureServer(t)
	other := testtls.New(t) // another CA
	for name, tc := range map[string]struct {
		change func(*natsconn.Config)
		keys   []string
		says   string
	}{
		"creds of another operator": {
			change: func(c *natsconn.Config) { c.Creds = testnats.NewOperator(t).Creds(t) },
			keys:   []string{"creds"}, says: "Authorization Violation",
		},
		"no credentials": {
			change: func(c *natsconn.Config) { c.Creds = "" },
			keys:   []string{"creds", "nkey", "user", "token"}, says: "Authorization Violation",
		},
		"no client certificate": {
			change: func(c *natsconn.Config) { c.TLS.Cert, c.TLS.Key = "", "" },
			keys:   []string{"tls.cert"}, says: "the server refused the client certificate, or wants one",
		},
		"server certificate of another CA": {
			change: func(c *natsconn.Config) { c.TLS.CA = other.CA },
			keys:   []string{"tls.ca"}, says: "x509: certificate signed by unknown authority",
		},
		"client certificate of another CA": {
			change: func(c *natsconn.Config) { c.TLS.Cert, c.TLS.Key = other.ClientCert, other.ClientKey },
			keys:   []string{"tls.cert"}, says: "the server refused the client certificate, or wants one",
		},
		"no TLS settings (the system's roots)": {
			change: func(c *natsconn.Config) { c.TLS = connauth.TLS{} },
			keys:   []string{"tls.ca"}, says: "x509: certificate signed by unknown authority",
		},
		"wrong server name": {
			change: func(c *natsconn.Config) { c.TLS.ServerName = "nats.example" },
			keys:   []string{"tls.server_name"}, says: "nats.example",
		},
	} {
		c := s.config()
		tc.change(&c)
		nc, err := c.Connect(nats.Timeout(5 * time.Second))
		if nc != nil {
			nc.Close()
		}
		var ce *natsconn.ConnectError
		require.ErrorAs(t, err, &ce, name)
		require.Equal(t, tc.keys, ce.Keys, "%s: %v", name, err)
		hint := ce.Hint(func(k string) string { return "<" + k + ">" })
		require.Contains(t, hint, "<"+tc.keys[0]+">", name)
		require.Contains(t, err.Error()+" "+hint, tc.says, name)
		require.Contains(t, err.Error(), s.ns.URL(), name)
		requireNoSeed(t, err.Error(), c.Creds)
	}
}

// requireNoSeed fails when msg holds the nkey seed of the creds file.
func requireNoSeed(t *testing.T, msg, creds string) {
	t.Helper()
	if creds == "" {
		return
	}
	data, err := os.ReadFile(creds)
	require.NoError(t, err)
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "SU") {
			require.NotContains(t, msg, line, "the seed is in the message")
			return
		}
	}
	t.Fatalf("no seed in %s", creds)
}

// A password or token works from its value or its file; a wrong one is
// refused naming the settings, without the value.
func TestPasswordAndTokenFromValueOrFile(t *testing.T) {
	t.Parallel()
	const password, token = "pw-Секрет-1", "tok-Секрет-2"
	dir := t.TempDir()
	pwFile, tokFile := filepath.Join(dir, "pw"), filepath.Join(dir, "tok")
	require.NoError(t, os.WriteFile(pwFile, []byte(password+"\n"), 0o600))
	require.NoError(t, os.WriteFile(tokFile, []byte(token+"\r\n"), 0o600))
	userURL := testnats.New(t, func(o *server.Options) { o.Username, o.Password = "salvo", password }).URL()
	tokenURL := testnats.New(t, func(o *server.Options) { o.Authorization = token }).URL()

	for name, c := range map[string]natsconn.Config{
		"password":      {URL: userURL, User: "salvo", Password: password},
		"password_file": {URL: userURL, User: "salvo", PasswordFile: pwFile},
		"token":         {URL: tokenURL, Token: token},
		"token_file":    {URL: tokenURL, TokenFile: tokFile},
	} {
		nc, err := c.Connect()
		require.NoError(t, err, name)
		nc.Close()
	}
	for name, tc := range map[string]struct {
		c    natsconn.Config
		keys []string
	}{
		"wrong password": {natsconn.Config{URL: userURL, User: "salvo", Password: "wrong-pw-123"}, []string{"user", "password"}},
		"wrong token":    {natsconn.Config{URL: tokenURL, Token: "wrong-tok-456"}, []string{"token"}},
	} {
		_, err := tc.c.Connect()
		var ce *natsconn.ConnectError
		require.ErrorAs(t, err, &ce, name)
		require.True(t, errors.Is(err, nats.ErrAuthorization), name)
		require.Equal(t, tc.keys, ce.Keys, name)
		for _, secret := range []string{"wrong-pw-123", "wrong-tok-456", password, token} {
			require.NotContains(t, err.Error(), secret, name)
		}
	}
}

// Settings are checked before any connection; each error names its key
// and holds no secret.
func TestValidateNamesTheKey(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	require.NoError(t, os.WriteFile(empty, []byte("\n"), 0o600))
	notCreds := filepath.Join(dir, "not.creds")
	require.NoError(t, os.WriteFile(notCreds, []byte("hello"), 0o600))
	const url = "nats://127.0.0.1:1"
	for _, tc := range []struct {
		c   natsconn.Config
		key string
	}{
		{natsconn.Config{}, "url"},
		{natsconn.Config{URL: url, User: "u"}, "user"},
		{natsconn.Config{URL: url, Password: "s3cret-a"}, "password"},
		{natsconn.Config{URL: url, User: "u", Password: "s3cret-a", PasswordFile: empty}, "password_file"},
		{natsconn.Config{URL: url, Token: "s3cret-a", TokenFile: empty}, "token_file"},
		{natsconn.Config{URL: url, Creds: "a", NKey: "b"}, "nkey"},
		{natsconn.Config{URL: url, Creds: "a", Token: "s3cret-a"}, "token"},
		{natsconn.Config{URL: url, TLS: connauth.TLS{Cert: "c"}}, "tls.key"},
		{natsconn.Config{URL: url, TLS: connauth.TLS{Key: "k"}}, "tls.cert"},
		// Files are read by Options (and Connect).
		{natsconn.Config{URL: url, Creds: filepath.Join(dir, "missing")}, "creds"},
		{natsconn.Config{URL: url, Creds: notCreds}, "creds"},
		{natsconn.Config{URL: url, NKey: notCreds}, "nkey"},
		{natsconn.Config{URL: url, User: "u", PasswordFile: empty}, "password_file"},
		{natsconn.Config{URL: url, TLS: connauth.TLS{CA: notCreds}}, "tls.ca"},
		// url.Parse's error would quote the URL, password and all.
		{natsconn.Config{URL: "nats://bob:s3cret-a%zz@127.0.0.1:1"}, "url"},
		{natsconn.Config{URL: url + ", bob:s3cret-a%zz@127.0.0.1:2"}, "url"},
		{natsconn.Config{URL: " , "}, "url"},
		{natsconn.Config{URL: url, TLS: connauth.TLS{Cert: notCreds, Key: notCreds}}, "tls.cert"},
	} {
		_, err := tc.c.Options()
		ce, ok := lifecycle.AsConfigError(err)
		require.True(t, ok, "%+v: %v", tc.c, err)
		require.Equal(t, tc.key, ce.Key, "%v", err)
		require.NotContains(t, err.Error(), "s3cret-a")
	}
}

// Every form of server list nats.go takes is valid: schemes, host:port
// without one, users and tokens in the URL, spaces around commas.
func TestValidateTakesWhatTheClientTakes(t *testing.T) {
	t.Parallel()
	for _, u := range []string{
		"nats://127.0.0.1:4222",
		"127.0.0.1:4222",
		"localhost",
		"nats://bob:pw@h1:4222, tls://tok@h2:4222,ws://h3:80",
		"bob:pw@127.0.0.1:4222",
		"nats://[::1]:4222",
	} {
		require.NoError(t, natsconn.Config{URL: u}.Validate(), u)
	}
}

// A URL that does not parse fails Connect before any dial, naming the
// setting and not the value: nats.go's own error would quote the URL with
// its password.
func TestConnectWithAnUnparsableURLShowsNoPassword(t *testing.T) {
	t.Parallel()
	for _, u := range []string{"nats://bob:s3cr%zzet@127.0.0.1:1", "bob:s3cr%zzet@127.0.0.1:1"} {
		nc, err := natsconn.Config{URL: u}.Connect(nats.Timeout(time.Second))
		require.Nil(t, nc)
		ce, ok := lifecycle.AsConfigError(err)
		require.True(t, ok, "%v", err)
		require.Equal(t, "url", ce.Key)
		require.Contains(t, err.Error(), "not a valid URL (value not shown: it may hold a password)")
		require.NotContains(t, err.Error(), "s3cr")
	}
}

func TestRedactURLsHidesPasswordsAndTokens(t *testing.T) {
	t.Parallel()
	got := natsconn.RedactURLs("nats://bob:pw-1@h1:4222, nats://tok-2@h2:4222,tls://h3:4222, bob:pw-4@h4:4222")
	require.Equal(t, "nats://bob:xxxxx@h1:4222,nats://xxxxx@h2:4222,tls://h3:4222,bob:xxxxx@h4:4222", got)
	require.NotContains(t, natsconn.RedactURLs("nats://a:b@h:%zz"), "a:b")
}
