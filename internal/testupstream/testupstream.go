// Package testupstream starts the mock upstream (internal/mockupstream) for a
// test and closes it when the test ends. It is test scaffolding: production
// code and binaries never import it (depguard), so they never link the
// testing package.
package testupstream

import (
	"testing"

	"github.com/salvo-run/salvo/internal/mockupstream"
)

// New starts a mock upstream with opts for t, closed when t ends.
func New(t testing.TB, opts mockupstream.Options) *mockupstream.Server {
	t.Helper()
	s, err := mockupstream.New(opts)
	if err != nil {
		t.Fatalf("testupstream: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}
