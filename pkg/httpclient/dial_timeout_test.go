package httpclient

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/salvo-run/salvo/internal/mockupstream"
	"github.com/salvo-run/salvo/pkg/lifecycle"
)

// fullBacklog returns the address of a loopback listener that never
// accepts and whose accept queue is already full, so the kernel drops
// further SYNs and a new connect hangs until the dialer's timeout.
func fullBacklog(t *testing.T) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	require.NoError(t, err)
	t.Cleanup(func() { _ = syscall.Close(fd) })
	require.NoError(t, syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}))
	require.NoError(t, syscall.Listen(fd, 0))
	sa, err := syscall.Getsockname(fd)
	require.NoError(t, err)
	addr := fmt.Sprintf("127.0.0.1:%d", sa.(*syscall.SockaddrInet4).Port)
	// Fill the accept queue: connect until one connect times out (bounded).
	for i := 0; i < 16; i++ {
		conn, err := net.DialTimeout("tcp", addr, 300*time.Millisecond)
		if err != nil {
			var ne net.Error
			require.True(t, errors.As(err, &ne) && ne.Timeout(), "filling the backlog: %v", err)
			return addr
		}
		t.Cleanup(func() { _ = conn.Close() })
	}
	t.Fatalf("backlog of %s never filled", addr)
	return ""
}

// A dial that times out is a connect error like any other: retried
// in-process, then network_error (the same rule as a TLS handshake
// timeout).
func TestDialTimeoutRetriedThenNetworkError(t *testing.T) {
	t.Parallel()
	addr := fullBacklog(t)
	c, _ := setup(t, mockupstream.Options{}, func(cfg *Config) {
		cfg.Routes = map[string]Route{testModel: {BaseURL: "http://" + addr}}
		cfg.Timeouts.Connect = 150 * time.Millisecond
		cfg.TransportRetries = 2
	})
	resp := doWithin(t, c, t.Context(), chatRequest("r-dial-timeout", nil), Call{}, 20*time.Second)
	require.NotNil(t, resp.Failure)
	require.Equal(t, lifecycle.CodeNetworkError, resp.Failure.Code)
	require.Equal(t, 0, resp.Status)
	require.Equal(t, 2, resp.TransportRetries)
	require.Contains(t, resp.Failure.Message, "timeout")
}

// timeoutErr is a transport timeout like net/http's TLS handshake timeout.
type timeoutErr struct{}

func (timeoutErr) Error() string   { return "net/http: TLS handshake timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

// Whichever form the transport's connect timeout takes (a dial error that
// matches context.DeadlineExceeded, or the TLS handshake timeout), it is
// retried while the attempt's own context is alive; once the attempt's
// context is done nothing is.
func TestConnectTimeoutsRetriedAlike(t *testing.T) {
	t.Parallel()
	for _, err := range []error{
		&net.OpError{Op: "dial", Net: "tcp", Err: context.DeadlineExceeded},
		&net.OpError{Op: "dial", Net: "tcp", Err: os.ErrDeadlineExceeded},
		timeoutErr{},
	} {
		require.True(t, transportRetriable(t.Context(), err), "%v", err)
		done, cancel := context.WithCancel(t.Context())
		cancel()
		require.False(t, transportRetriable(done, err), "%v", err)
	}
	require.False(t, transportRetriable(t.Context(), context.Canceled))
}
