package connauth_test

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/salvo-run/salvo/internal/connauth"
	"github.com/salvo-run/salvo/pkg/lifecycle"
)

// A secret comes from its value or its file (line break dropped); both,
// a missing file or an empty one is an error naming the file's key and
// holding no secret.
func TestSecretFromValueOrFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file, empty := filepath.Join(dir, "pw"), filepath.Join(dir, "empty")
	require.NoError(t, os.WriteFile(file, []byte("from-file-Pa55\r\n"), 0o600))
	require.NoError(t, os.WriteFile(empty, []byte("\n"), 0o600))

	got, err := connauth.Secret("value-Pa55", "", "password", "password_file")
	require.NoError(t, err)
	require.Equal(t, "value-Pa55", got.Reveal())
	got, err = connauth.Secret("", file, "password", "password_file")
	require.NoError(t, err)
	require.Equal(t, "from-file-Pa55", got.Reveal())
	require.Equal(t, "[redacted]", fmt.Sprint(got))

	for _, tc := range []struct {
		value lifecycle.Secret
		file  string
		want  string
	}{
		{"value-Pa55", file, "set password or password_file, not both"},
		{"", filepath.Join(dir, "missing"), "no such file or directory"},
		{"", empty, "is empty"},
	} {
		_, err := connauth.Secret(tc.value, tc.file, "password", "password_file")
		ce, ok := lifecycle.AsConfigError(err)
		require.True(t, ok, "%v", err)
		require.Equal(t, "password_file", ce.Key)
		require.ErrorContains(t, err, tc.want)
		require.NotContains(t, err.Error(), "Pa55")
	}
}

// Errors that are not about TLS blame no TLS setting; no TLS settings
// make no TLS config.
func TestTLSBlameAndConfigOfNothing(t *testing.T) {
	t.Parallel()
	require.Empty(t, connauth.TLSBlame(errors.New("connection refused")))
	c, err := connauth.TLS{}.Config()
	require.NoError(t, err)
	require.Nil(t, c)
	c, err = connauth.TLS{Enabled: true}.Config()
	require.NoError(t, err)
	require.NotNil(t, c, "enabled alone: the system's roots")
	require.Nil(t, c.RootCAs)
}

// A TLS handshake answered in plain text (a server without TLS replying
// with an error line) blames "enabled": TLS is on where it should not be.
func TestTLSBlameOfAPlainTextAnswer(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	served := make(chan struct{})
	go func() {
		defer close(served)
		c, err := l.Accept()
		if err != nil {
			return
		}
		_, _ = c.Write([]byte("-ERR unknown command\r\n"))
		_ = c.Close()
	}()
	c, err := tls.Dial("tcp", l.Addr().String(), &tls.Config{ServerName: "redis.internal", MinVersion: tls.VersionTLS12})
	if c != nil {
		_ = c.Close()
	}
	<-served
	require.Error(t, err)
	require.Equal(t, "enabled", connauth.TLSBlame(err), "%v", err)
	require.Equal(t, "TLS is on but the server answered in plain text", connauth.Describe("enabled"))
}
