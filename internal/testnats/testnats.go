// Package testnats runs an embedded nats-server (the real server package,
// JetStream on, a temporary store directory, a free loopback port) for one
// test, and can kill and restart it on the same port and store for fault
// injection. Options make it require TLS (WithTLS) or credentials files
// of an operator (Operator).
package testnats

import (
	"crypto/tls"
	"net"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// Server is one embedded nats-server.
type Server struct {
	t    testing.TB
	opts server.Options
	srv  *server.Server
}

// Option changes the server New starts.
type Option func(*server.Options)

// WithTLS makes the server require TLS with cfg (testtls.Files.ServerConfig:
// client certificates required and verified).
func WithTLS(cfg *tls.Config) Option {
	return func(o *server.Options) {
		o.TLSConfig = cfg
		o.TLS = true
		o.TLSVerify = cfg.ClientAuth == tls.RequireAndVerifyClientCert
		o.TLSTimeout = 5
	}
}

// New starts a JetStream-enabled server for t and shuts it down at cleanup.
func New(t testing.TB, opts ...Option) *Server {
	t.Helper()
	s := &Server{t: t, opts: server.Options{
		Host:      "127.0.0.1",
		Port:      -1,
		JetStream: true,
		StoreDir:  t.TempDir(),
		NoLog:     true,
		NoSigs:    true,
	}}
	for _, o := range opts {
		o(&s.opts)
	}
	s.start()
	// Pin the port the first start got, so Restart comes back on the same URL.
	s.opts.Port = s.srv.Addr().(*net.TCPAddr).Port
	t.Cleanup(s.Shutdown)
	return s
}

func (s *Server) start() {
	s.t.Helper()
	srv, err := server.NewServer(&s.opts)
	if err != nil {
		s.t.Fatalf("testnats: new server: %v", err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		s.t.Fatalf("testnats: server not ready")
	}
	s.srv = srv
}

// URL is the client URL.
func (s *Server) URL() string { return s.srv.ClientURL() }

// Server exposes the running server (for its JetStream config and stats).
func (s *Server) Server() *server.Server { return s.srv }

// Shutdown stops the server; safe to call twice.
func (s *Server) Shutdown() {
	if s.srv != nil {
		s.srv.Shutdown()
		s.srv.WaitForShutdown()
	}
}

// Restart shuts the server down and starts it again with the same port and
// store directory: persisted streams come back, connections must reconnect.
func (s *Server) Restart() {
	s.t.Helper()
	s.Shutdown()
	s.start()
}

// Connect opens a client connection that reconnects forever and is closed at
// cleanup.
func (s *Server) Connect(opts ...nats.Option) *nats.Conn {
	s.t.Helper()
	opts = append([]nats.Option{
		nats.MaxReconnects(-1),
		nats.ReconnectWait(50 * time.Millisecond),
	}, opts...)
	nc, err := nats.Connect(s.URL(), opts...)
	if err != nil {
		s.t.Fatalf("testnats: connect: %v", err)
	}
	s.t.Cleanup(nc.Close)
	return nc
}
