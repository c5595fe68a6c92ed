package lifecycle_test

import (
	"testing"

	"github.com/salvo-run/salvo/internal/testleak"
)

// TestMain checks that no test leaves a goroutine behind. lifecycle starts no
// goroutines, so no ignore is needed.
func TestMain(m *testing.M) {
	testleak.VerifyTestMain(m)
}
