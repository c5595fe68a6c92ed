package ratelimit_test

import (
	"testing"

	"github.com/salvo-run/salvo/internal/testleak"
)

// TestMain checks that no test leaves a goroutine behind.
func TestMain(m *testing.M) {
	testleak.VerifyTestMain(m)
}
