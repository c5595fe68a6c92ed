package testredis

import (
	"context"
	"errors"
	"strings"
	"syscall"
	"testing"
)

// NewReplica starts a redis-server replicating primary (a server New
// started, plain text, not Cluster) with primary's password or ACL user,
// and returns once its link to primary is up. Its Prefix is primary's, so
// a test reads the keys its store wrote on primary from the replica.
// Stop it (or Restart it) to take the replica away from primary.
func NewReplica(t testing.TB, primary *Server) *Server {
	t.Helper()
	switch {
	case !primary.managed:
		t.Fatalf("testredis: NewReplica needs a primary New started (give it an option, or unset REDIS_URL)")
	case primary.opts.tls != nil || primary.opts.cluster:
		t.Fatalf("testredis: NewReplica replicates a plain-text, non-Cluster primary")
	}
	o := primary.opts
	o.replicaOf = primary.port
	s := New(t, func(opts *options) { *opts = o })
	s.Prefix = primary.Prefix
	s.WaitLinked()
	return s
}

// WaitLinked blocks until a replica (NewReplica) reports its link to the
// primary up and the initial sync done.
func (s *Server) WaitLinked() {
	s.t.Helper()
	s.poll("link to its primary", func(ctx context.Context) error {
		info, err := s.Client.Info(ctx, "replication").Result()
		switch {
		case err != nil:
			return err
		case !strings.Contains(info, "master_link_status:up") || strings.Contains(info, "master_sync_in_progress:1"):
			return errors.New("link not up or sync in progress")
		}
		return nil
	})
}

// Pause stops a managed server's process (SIGSTOP): it answers nothing
// and, as a replica, applies and acknowledges no replication until Resume.
// Stop and the test's cleanup still kill it.
func (s *Server) Pause() { s.signal(syscall.SIGSTOP) }

// Resume continues a server Pause stopped (SIGCONT).
func (s *Server) Resume() { s.signal(syscall.SIGCONT) }

func (s *Server) signal(sig syscall.Signal) {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.managed || s.cmd == nil {
		s.t.Fatalf("testredis: %s needs a running managed redis-server", sig)
	}
	if err := s.cmd.Process.Signal(sig); err != nil {
		s.t.Fatalf("testredis: %s: %v", sig, err)
	}
}
