package natsconn

import (
	"errors"
	"net/url"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"
)

// A client error quoting a configured URL loses the URL's password, and
// stays the client's error for errors.Is and errors.As.
func TestScrubRemovesTheConfiguredURLsFromAClientError(t *testing.T) {
	t.Parallel()
	const bad = `nats://bob:s3"cr%zzet@127.0.0.1:1` // a quote: %q escapes it
	const servers = "nats://h1:4222, " + bad
	nc, clientErr := nats.Connect(servers) // fails parsing, before any dial
	require.Nil(t, nc)
	require.Contains(t, clientErr.Error(), "s3", "nats.go quotes the URL")

	err := scrub(clientErr, servers)
	require.NotContains(t, err.Error(), "s3")
	require.Contains(t, err.Error(), "a URL that does not parse")
	var ue *url.Error
	require.ErrorAs(t, err, &ue)

	auth := errors.Join(nats.ErrAuthorization, errors.New("to nats://tok-s3cret@h1:4222"))
	err = scrub(auth, "nats://tok-s3cret@h1:4222")
	require.ErrorIs(t, err, nats.ErrAuthorization)
	require.Equal(t, "nats: authorization violation\nto nats://xxxxx@h1:4222", err.Error())

	plain := errors.New("dial tcp 127.0.0.1:1: connection refused")
	require.Same(t, plain, scrub(plain, servers), "an error without a URL is left as it is")
}
