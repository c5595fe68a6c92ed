package demo

import (
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

const (
	natsReadyTimeout = 10 * time.Second
	// natsMaxStore bounds the JetStream file store of the embedded server.
	natsMaxStore = 1 << 30
)

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
