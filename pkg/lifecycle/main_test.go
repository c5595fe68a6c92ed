package lifecycle_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that no test leaves a goroutine behind. lifecycle starts no
// goroutines, so no ignore is needed.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
