// Package natsconfig_test checks the example NATS accounts in
// deployments/nats against the subject rules of docs/PROTOCOL.md.
package natsconfig_test

import (
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"

	"github.com/salvo-run/salvo/internal/testbin"
	"github.com/salvo-run/salvo/internal/testleak"
)

func TestMain(m *testing.M) {
	testleak.VerifyTestMainThen(m, testbin.Remove) // the producer binary the child-process tests ran
}

const (
	workerPassword = "worker-secret"
	clientPassword = "client-secret"
)

// startServer runs accounts.conf in an embedded nats-server on a free port
// with a temporary JetStream store.
func startServer(t *testing.T) *server.Server {
	t.Helper()
	t.Setenv("SALVO_WORKER_PASSWORD", workerPassword)
	t.Setenv("SALVO_CLIENT_PASSWORD", clientPassword)
	opts, err := server.ProcessConfigFile("accounts.conf")
	require.NoError(t, err)
	opts.Host, opts.Port = "127.0.0.1", -1
	opts.StoreDir = t.TempDir()
	opts.NoLog, opts.NoSigs = true, true
	s, err := server.NewServer(opts)
	require.NoError(t, err)
	s.Start()
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	require.True(t, s.ReadyForConnections(10*time.Second), "nats-server did not start")
	return s
}

// conn connects as user; permission violations arrive on the returned
// channel.
func conn(t *testing.T, s *server.Server, user, password string) (*nats.Conn, <-chan error) {
	t.Helper()
	errs := make(chan error, 16)
	nc, err := nats.Connect(s.ClientURL(), nats.UserInfo(user, password),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			select {
			case errs <- err:
			default:
			}
		}))
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	return nc, errs
}

// A client cannot publish where only workers may (control events, results,
// batch events): the server refuses with a permission violation and no
// subscriber sees the message. A worker can; a client can submit requests.
func TestOnlyWorkersPublishControlResultsAndEvents(t *testing.T) {
	s := startServer(t)
	worker, _ := conn(t, s, "salvo-worker", workerPassword)
	client, clientErrs := conn(t, s, "salvo-client", clientPassword)

	sub, err := worker.SubscribeSync("salvo.>")
	require.NoError(t, err)
	require.NoError(t, worker.Flush())

	for _, subj := range []string{"salvo.ctl.cancel.x", "salvo.ctl.supersede.r1", "salvo.res.x", "salvo.evt.batch.x"} {
		t.Run(subj, func(t *testing.T) {
			require.NoError(t, client.Publish(subj, []byte("forged")))
			require.NoError(t, client.Flush())
			select {
			case err := <-clientErrs:
				require.ErrorIs(t, err, nats.ErrPermissionViolation)
				require.Contains(t, err.Error(), subj)
			case <-time.After(5 * time.Second):
				t.Fatalf("no permission violation for a client publish on %s", subj)
			}
			// The worker's own publish is the first message the subscriber
			// sees: the client's never got through.
			require.NoError(t, worker.Publish(subj, []byte("worker")))
			m, err := sub.NextMsg(5 * time.Second)
			require.NoError(t, err)
			require.Equal(t, subj, m.Subject)
			require.Equal(t, "worker", string(m.Data))
		})
	}

	t.Run("client submits a request", func(t *testing.T) {
		require.NoError(t, client.Publish("salvo.req.gpt-4o.b1", []byte("request")))
		require.NoError(t, client.Flush())
		m, err := sub.NextMsg(5 * time.Second)
		require.NoError(t, err)
		require.Equal(t, "salvo.req.gpt-4o.b1", m.Subject)
		require.Equal(t, "request", string(m.Data))
	})

	t.Run("client announces a model but cannot touch the discovery leader", func(t *testing.T) {
		kv, err := worker.SubscribeSync("$KV.SALVO_DISCOVERY.>")
		require.NoError(t, err)
		require.NoError(t, worker.Flush())
		require.NoError(t, client.Publish("$KV.SALVO_DISCOVERY.model.gpt-4o", []byte("gpt-4o")))
		require.NoError(t, client.Flush())
		m, err := kv.NextMsg(5 * time.Second)
		require.NoError(t, err)
		require.Equal(t, "$KV.SALVO_DISCOVERY.model.gpt-4o", m.Subject)

		require.NoError(t, client.Publish("$KV.SALVO_DISCOVERY.leader", []byte("forged")))
		require.NoError(t, client.Flush())
		select {
		case err := <-clientErrs:
			require.ErrorIs(t, err, nats.ErrPermissionViolation)
			require.Contains(t, err.Error(), "$KV.SALVO_DISCOVERY.leader")
		case <-time.After(5 * time.Second):
			t.Fatal("no permission violation for a client publish on the discovery leader key")
		}
		require.NoError(t, worker.Publish("$KV.SALVO_DISCOVERY.leader", []byte("worker")))
		m, err = kv.NextMsg(5 * time.Second)
		require.NoError(t, err)
		require.Equal(t, "worker", string(m.Data))
	})

	t.Run("client reads results and events", func(t *testing.T) {
		res, err := client.SubscribeSync("salvo.res.>")
		require.NoError(t, err)
		evt, err := client.SubscribeSync("salvo.evt.>")
		require.NoError(t, err)
		require.NoError(t, client.Flush())
		require.NoError(t, worker.Publish("salvo.res.b1", []byte("result")))
		require.NoError(t, worker.Publish("salvo.evt.batch.b1", []byte("event")))
		m, err := res.NextMsg(5 * time.Second)
		require.NoError(t, err)
		require.Equal(t, "result", string(m.Data))
		m, err = evt.NextMsg(5 * time.Second)
		require.NoError(t, err)
		require.Equal(t, "event", string(m.Data))
	})

	t.Run("client calls the batch API", func(t *testing.T) {
		// A plain responder stands in for the workers' micro service: the
		// permission is about the subject, not about who answers.
		api, err := worker.Subscribe("salvo.api.>", func(m *nats.Msg) {
			_ = m.Respond([]byte(`{"subject":"` + m.Subject + `"}`))
		})
		require.NoError(t, err)
		t.Cleanup(func() { _ = api.Unsubscribe() })
		require.NoError(t, worker.Flush())
		reply, err := client.Request("salvo.api.batch.get", []byte(`{"id":"b1"}`), 5*time.Second)
		require.NoError(t, err)
		require.JSONEq(t, `{"subject":"salvo.api.batch.get"}`, string(reply.Data))
		select {
		case err := <-clientErrs:
			t.Fatalf("the batch API request raised %v", err)
		default:
		}
		// The API is open to clients; the control subjects still are not.
		require.NoError(t, client.Publish("salvo.ctl.cancel.b1", []byte("forged")))
		require.NoError(t, client.Flush())
		select {
		case err := <-clientErrs:
			require.ErrorIs(t, err, nats.ErrPermissionViolation)
			require.Contains(t, err.Error(), "salvo.ctl.cancel.b1")
		case <-time.After(5 * time.Second):
			t.Fatal("no permission violation for a client publish on salvo.ctl.cancel.b1")
		}
	})

	t.Run("client cannot listen to control events", func(t *testing.T) {
		ctl, err := client.SubscribeSync("salvo.ctl.>")
		require.NoError(t, err)
		require.NoError(t, client.Flush())
		select {
		case err := <-clientErrs:
			require.ErrorIs(t, err, nats.ErrPermissionViolation)
		case <-time.After(5 * time.Second):
			t.Fatal("no permission violation for a client subscribing to salvo.ctl.>")
		}
		require.NoError(t, worker.Publish("salvo.ctl.cancel.y", []byte("worker")))
		require.NoError(t, worker.Flush())
		_, err = ctl.NextMsg(200 * time.Millisecond)
		require.True(t, errors.Is(err, nats.ErrTimeout) || errors.Is(err, nats.ErrBadSubscription), "got %v", err)
	})
}
