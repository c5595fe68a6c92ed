package main

import (
	"testing"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/stretchr/testify/require"

	"github.com/salvo-run/salvo/internal/testnats"
)

// A refused connection names both variables of the setting to check: the
// gateway's own, which wins, and the nats CLI's.
func TestRefusalNamesTheGatewayVariableAndTheNATSOne(t *testing.T) {
	t.Parallel()
	const token = "gw-t0ken-Pa55"
	url := testnats.New(t, func(o *server.Options) { o.Authorization = token }).URL()
	env := map[string]string{"SALVO_GATEWAY_NATS_URL": url, "SALVO_GATEWAY_USER": "wrong-t0ken-Pa55"}
	err := run(nil, func(k string) string { return env[k] })
	require.ErrorContains(t, err, "Authorization Violation (check --user (SALVO_GATEWAY_USER or NATS_USER))")
	require.NotContains(t, err.Error(), "t0ken-Pa55")
}

// A server URL that does not parse fails before any dial, naming the flag
// and both variables, without the URL: nats.go's error would quote it,
// password and all.
func TestUnparsableServerURLShowsNoPassword(t *testing.T) {
	t.Parallel()
	const secret = "s3cr-Pa55"
	env := map[string]string{"NATS_URL": "nats://bob:" + secret + "%zz@127.0.0.1:1"}
	err := run(nil, func(k string) string { return env[k] })
	require.EqualError(t, err,
		"--nats-url (SALVO_GATEWAY_NATS_URL or NATS_URL): not a valid URL (value not shown: it may hold a password)")
}
