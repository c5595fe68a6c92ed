package main

import (
	"bufio"
	"io"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/salvo-run/salvo/internal/testleak"
)

func TestMain(m *testing.M) { testleak.VerifyTestMain(m) }

// echoServer echoes every line back until the test ends.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := (&net.ListenConfig{}).Listen(t.Context(), "tcp", "127.0.0.1:0")
	require.NoError(t, err)
	done := make(chan struct{})
	t.Cleanup(func() { _ = ln.Close(); <-done })
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	return ln.Addr().String()
}

// roundTrip sends a line over c and reads it back.
func roundTrip(c net.Conn, line string) (string, error) {
	if err := c.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
		return "", err
	}
	if _, err := io.WriteString(c, line+"\n"); err != nil {
		return "", err
	}
	got, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return "", err
	}
	return got[:len(got)-1], nil
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := (&net.Dialer{}).DialContext(t.Context(), "tcp", addr)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func TestProxyForwardsCutsRefusesAndRestores(t *testing.T) {
	p, err := newProxy(echoServer(t))
	require.NoError(t, err)
	defer p.close()

	c := dial(t, p.addr())
	got, err := roundTrip(c, "hello")
	require.NoError(t, err)
	require.Equal(t, "hello", got)

	p.setCut(true)
	_, err = roundTrip(c, "after the cut")
	require.Error(t, err, "an open connection is cut")
	_, err = roundTrip(dial(t, p.addr()), "while cut")
	require.Error(t, err, "a new connection is refused while cut")

	p.setCut(false)
	got, err = roundTrip(dial(t, p.addr()), "restored")
	require.NoError(t, err)
	require.Equal(t, "restored", got)
}

func TestProxyDelayHoldsEveryChunkBackAndKeepsOrder(t *testing.T) {
	p, err := newProxy(echoServer(t))
	require.NoError(t, err)
	defer p.close()
	c := dial(t, p.addr())

	const delay = 100 * time.Millisecond
	p.setDelay(delay)
	start := time.Now()
	got, err := roundTrip(c, "slow")
	require.NoError(t, err)
	require.Equal(t, "slow", got)
	// Both directions are held back: at least twice the delay (a lower
	// bound the timers guarantee, not a speed).
	require.GreaterOrEqual(t, time.Since(start), 2*delay)

	p.setDelay(0)
	for _, line := range []string{"a", "b", "c"} {
		got, err := roundTrip(c, line)
		require.NoError(t, err)
		require.Equal(t, line, got, "in order once the delay is gone")
	}
}

func TestProxyCloseEndsEveryConnection(t *testing.T) {
	p, err := newProxy(echoServer(t))
	require.NoError(t, err)
	c := dial(t, p.addr())
	_, err = roundTrip(c, "x")
	require.NoError(t, err)
	p.close()
	_, err = roundTrip(c, "after close")
	require.Error(t, err)
	_, err = (&net.Dialer{Timeout: time.Second}).DialContext(t.Context(), "tcp", p.addr())
	require.Error(t, err, "the listener is closed")
}
