package childproc_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/salvo-run/salvo/internal/childproc"
	"github.com/salvo-run/salvo/internal/testleak"
)

func TestMain(m *testing.M) { testleak.VerifyTestMain(m) }

// syncBuffer is a bytes.Buffer safe for the children's output copiers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestKillAllEndsEveryChildAndItsForks(t *testing.T) {
	p := &childproc.Set{Ctx: t.Context(), Logs: &syncBuffer{}}
	// A shell that forks a sleep: the kill reaches the whole group.
	a, err := p.Start("a", nil, "sh", "-c", "sleep 60 & wait")
	require.NoError(t, err)
	b, err := p.Start("b", nil, "sleep", "60")
	require.NoError(t, err)
	require.Equal(t, 2, p.Len())

	p.Kill(a)
	require.Equal(t, 1, p.Len())
	gone, err := a.Exited()
	require.True(t, gone)
	require.Error(t, err, "a SIGKILLed child reports how it ended")

	p.KillAll()
	require.Zero(t, p.Len())
	gone, _ = b.Exited()
	require.True(t, gone)
}

func TestRunWaitsForSuccessAndReportsFailure(t *testing.T) {
	logs := &syncBuffer{}
	p := &childproc.Set{Ctx: t.Context(), Logs: logs}
	require.NoError(t, p.Run(t.Context(), "ok", []string{"CHILDPROC_TEST=seen"}, "sh", "-c", "echo $CHILDPROC_TEST"))
	require.Contains(t, logs.String(), "seen", "the child's output and environment")
	err := p.Run(t.Context(), "fails", nil, "sh", "-c", "exit 3")
	require.ErrorContains(t, err, "fails")
	require.Zero(t, p.Len())
}

func TestWaitForStopsWhenTheChildExits(t *testing.T) {
	p := &childproc.Set{Ctx: t.Context(), Logs: &syncBuffer{}}
	defer p.KillAll()
	c, err := p.Start("short", nil, "sh", "-c", "exit 0")
	require.NoError(t, err)
	err = childproc.WaitFor(t.Context(), time.Minute, "never ready", c, func(context.Context) error {
		return errors.New("not yet")
	})
	require.ErrorContains(t, err, "short exited", "the wait ends with the child, not the timeout")
}

func TestHTTPOKWantsOK(t *testing.T) {
	status := http.StatusOK
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(status) }))
	defer srv.Close()
	require.NoError(t, childproc.HTTPOK(t.Context(), srv.URL))
	status = http.StatusServiceUnavailable
	require.ErrorContains(t, childproc.HTTPOK(t.Context(), srv.URL), "503")
	port, err := childproc.FreePort()
	require.NoError(t, err)
	require.Positive(t, port)
}
