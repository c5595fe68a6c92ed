package demo

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

const (
	natsReadyTimeout = 10 * time.Second
	// natsMaxStore bounds the JetStream file store of the embedded server.
	natsMaxStore = 1 << 30
	// natsCleanupTimeout bounds deleting the demo's streams from an
	// external server.
	natsCleanupTimeout = 10 * time.Second
)

// natsBackend is the NATS server the demo runs on, and how to let go of it.
type natsBackend struct {
	// url is what the workers and the producer connect to (it may hold a
	// password: never print it; label is what is printed).
	url   string
	label string
	stop  func()
}

// openNATS is the external server at o.NATSURL, whose streams under the
// demo's prefix are deleted at stop, or else an embedded nats-server.
func openNATS(ctx context.Context, o Options, prefix, tmp string) (*natsBackend, error) {
	if o.NATSURL == "" {
		srv, err := startNATS(tmp + "/jetstream")
		if err != nil {
			return nil, err
		}
		return &natsBackend{
			url:   srv.ClientURL(),
			label: fmt.Sprintf("embedded nats-server %s at %s (JetStream, file store in a temp dir)", server.VERSION, srv.ClientURL()),
			stop:  func() { stopNATS(srv) },
		}, nil
	}
	nc, err := nats.Connect(o.NATSURL, nats.Name("salvo-demo-check"), nats.Timeout(natsReadyTimeout))
	if err != nil {
		return nil, fmt.Errorf("demo: NATS_URL: %w", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("demo: NATS_URL: %w", err)
	}
	if _, err := js.AccountInfo(ctx); err != nil {
		return nil, fmt.Errorf("demo: NATS_URL at %s: JetStream: %w", redactedURLs(o.NATSURL), err)
	}
	return &natsBackend{
		url: o.NATSURL,
		label: fmt.Sprintf("NATS_URL at %s (server %s), streams %s_*, deleted at the end",
			redactedURLs(nc.ConnectedUrlRedacted()), nc.ConnectedServerVersion(), strings.ToUpper(prefix)),
		stop: func() { deleteStreams(o.NATSURL, prefix) },
	}, nil
}

// deleteStreams removes the streams, key-value buckets and object stores
// named after prefix (<P>_REQUESTS, KV_<P>_DISCOVERY, OBJ_<P>_BODIES, …)
// from a shared server. Best effort: the run's outcome is already known.
func deleteStreams(natsURL, prefix string) {
	ctx, cancel := context.WithTimeout(context.Background(), natsCleanupTimeout)
	defer cancel()
	nc, err := nats.Connect(natsURL, nats.Name("salvo-demo-cleanup"))
	if err != nil {
		return
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return
	}
	up := strings.ToUpper(prefix) + "_"
	var names []string
	lister := js.StreamNames(ctx)
	for name := range lister.Name() {
		bare := strings.TrimPrefix(strings.TrimPrefix(name, "KV_"), "OBJ_")
		if strings.HasPrefix(bare, up) {
			names = append(names, name)
		}
	}
	for _, name := range names {
		_ = js.DeleteStream(ctx, name)
	}
}

// redactedURLs shows a server list without passwords.
func redactedURLs(list string) string {
	parts := strings.Split(list, ",")
	for i, p := range parts {
		if u, err := url.Parse(strings.TrimSpace(p)); err == nil {
			parts[i] = u.Redacted()
		}
	}
	return strings.Join(parts, ",")
}

// startNATS runs the real nats-server in process: JetStream on, file store
// in dir, a free loopback port.
func startNATS(dir string) (*server.Server, error) {
	srv, err := server.NewServer(&server.Options{
		ServerName:        "salvo-demo",
		Host:              "127.0.0.1",
		Port:              -1,
		JetStream:         true,
		StoreDir:          dir,
		JetStreamMaxStore: natsMaxStore,
		NoLog:             true,
		NoSigs:            true,
	})
	if err != nil {
		return nil, fmt.Errorf("demo: nats-server: %w", err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(natsReadyTimeout) {
		srv.Shutdown()
		srv.WaitForShutdown()
		return nil, errors.New("demo: nats-server: not ready for connections")
	}
	return srv, nil
}

// stopNATS shuts the server down and waits for it.
func stopNATS(srv *server.Server) {
	srv.Shutdown()
	srv.WaitForShutdown()
}
