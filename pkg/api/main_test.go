package api_test

import (
	"testing"

	"github.com/salvo-run/salvo/internal/testleak"
)

// TestMain checks that no test leaves a goroutine behind: every test stops
// its service (which waits for its background work) and closes its
// connection and embedded server at cleanup, so no ignore is needed.
func TestMain(m *testing.M) {
	testleak.VerifyTestMain(m)
}
