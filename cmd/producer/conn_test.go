package main

import (
	"net"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/stretchr/testify/require"
)

// tokenServer is an embedded nats-server that admits only clients
// presenting token.
func tokenServer(t *testing.T, token string) string {
	t.Helper()
	srv, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: -1, Authorization: token, NoLog: true, NoSigs: true,
	})
	require.NoError(t, err)
	go srv.Start()
	require.True(t, srv.ReadyForConnections(10*time.Second), "server not ready")
	t.Cleanup(func() {
		srv.Shutdown()
		srv.WaitForShutdown()
	})
	return "nats://" + srv.Addr().(*net.TCPAddr).String()
}

// --user without --password is sent as a token, as the nats CLI does:
// the connection is admitted (and then finds no batch service), a wrong
// token is refused without being printed, and a user/password pair is
// not taken for a token.
func TestUserWithoutPasswordIsSentAsAToken(t *testing.T) {
	t.Parallel()
	const token = "t0ken-s3cret"
	url := tokenServer(t, token)
	env := map[string]string{"NATS_URL": url, "SALVO_PREFIX": "tok"}

	r := cli(t, env, "--user", token, "list")
	require.Equal(t, exitUnreachable, r.code)
	require.Contains(t, r.err, "no batch service answers on tok.api.batch.list", "connected with the token")

	r = cli(t, map[string]string{"NATS_URL": url, "SALVO_PREFIX": "tok", "NATS_USER": token}, "list")
	require.Contains(t, r.err, "no batch service answers on tok.api.batch.list", "NATS_USER is a token too")

	r = cli(t, env, "--user", "wrong-token", "list")
	require.Equal(t, exitUnreachable, r.code)
	require.Contains(t, r.err, "cannot reach NATS at "+url)
	require.Contains(t, r.err, "uthorization")
	require.NotContains(t, r.err, "wrong-token")

	r = cli(t, env, "--user", token, "--password", "pw", "list")
	require.Equal(t, exitUnreachable, r.code)
	require.Contains(t, r.err, "cannot reach NATS at "+url, "a user with a password is not a token")
}
