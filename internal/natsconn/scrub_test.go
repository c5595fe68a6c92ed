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
	const servers = `nats://h1:4222, nats://bob:s3"cr%zzet@127.0.0.1:1`
	_, parseErr := url.Parse(`nats://bob:s3"cr%zzet@127.0.0.1:1`)
	require.Error(t, parseErr)
	require.Contains(t, parseErr.Error(), "s3", "url.Parse quotes the URL")

	err := scrub(parseErr, servers)
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
