package api_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/salvo-run/salvo/internal/testnats"
	"github.com/salvo-run/salvo/pkg/api"
)

// testClock is a settable clock.
type testClock struct{ now time.Time }

func (c *testClock) Now() time.Time { return c.now }

// bundle is what a test needs next to the service.
type bundle struct {
	svc     *api.Service
	nc      *nats.Conn
	backend *fakeBackend
	clock   *testClock
	prefix  string
	schemas *apiSchemas
}

// setup starts the service over an embedded nats-server of its own.
func setup(t *testing.T, cfg api.Config) *bundle {
	t.Helper()
	srv := testnats.New(t)
	nc := srv.Connect()
	backend := newFakeBackend()
	clock := &testClock{now: time.Unix(1_700_000_000, 0)}
	log := zerolog.New(zerolog.NewTestWriter(t))
	svc, err := api.New(api.Deps{
		Store: backend, Events: backend, Engine: backend,
		Logger: &log, Clock: clock.Now,
	}, cfg)
	require.NoError(t, err)
	require.NoError(t, svc.Start(nc))
	t.Cleanup(func() { require.NoError(t, svc.Stop()) })
	prefix := cfg.WithDefaults().Prefix
	return &bundle{svc: svc, nc: nc, backend: backend, clock: clock, prefix: prefix, schemas: loadSchemas(t)}
}

// request sends body to endpoint and returns the raw reply.
func (b *bundle) request(t *testing.T, endpoint, body string) *nats.Msg {
	t.Helper()
	msg, err := b.nc.Request(api.Subject(b.prefix, endpoint), []byte(body), 5*time.Second)
	require.NoError(t, err)
	return msg
}

// ok sends body to endpoint, requires a success reply valid against the
// endpoint's reply schema (and the body against its request schema), and
// decodes it into out.
func (b *bundle) ok(t *testing.T, endpoint, body string, out any) []byte {
	t.Helper()
	b.schemas.validRequest(t, endpoint, body)
	msg := b.request(t, endpoint, body)
	require.Empty(t, msg.Header.Get(micro.ErrorCodeHeader), "error reply: %s", msg.Data)
	b.schemas.validReply(t, endpoint, msg.Data)
	if out != nil {
		require.NoError(t, json.Unmarshal(msg.Data, out))
	}
	return msg.Data
}

// fail sends body to endpoint and requires an error reply whose headers
// and body agree; it returns the code and the message.
func (b *bundle) fail(t *testing.T, endpoint, body string) (code, message string) {
	t.Helper()
	msg := b.request(t, endpoint, body)
	code = msg.Header.Get(micro.ErrorCodeHeader)
	require.NotEmpty(t, code, "success reply: %s", msg.Data)
	b.schemas.valid(t, "error", msg.Data)
	var e api.ErrorReply
	require.NoError(t, json.Unmarshal(msg.Data, &e))
	require.Equal(t, code, e.Error.Code)
	require.Equal(t, msg.Header.Get(micro.ErrorHeader), e.Error.Message)
	return code, e.Error.Message
}
