package main

import (
	"testing"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/stretchr/testify/require"

	"github.com/salvo-run/salvo/internal/testnats"
)

// tokenServer is an embedded nats-server that admits only clients
// presenting token.
func tokenServer(t *testing.T, token string) string {
	t.Helper()
	return testnats.New(t, func(o *server.Options) { o.Authorization = token }).URL()
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

// A server URL that does not parse is a usage error naming the flag and
// variable, without the URL: nats.go's error would quote it, password and
// all.
func TestUnparsableServerURLShowsNoPassword(t *testing.T) {
	t.Parallel()
	const secret = "s3cr-Pa55"
	r := cli(t, map[string]string{"NATS_URL": "nats://bob:" + secret + "%zz@127.0.0.1:1"}, "list")
	require.Equal(t, exitUsage, r.code)
	require.Contains(t, r.err, "--server (NATS_URL): not a valid URL (value not shown: it may hold a password)")
	require.NotContains(t, r.err+r.out, secret)
}
