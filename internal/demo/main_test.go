package demo_test

import (
	"testing"

	"github.com/salvo-run/salvo/internal/testleak"
)

// No ignores: every run must leave no goroutine behind (nats-server,
// redis clients, miniredis, the mock and the worker are all stopped).
func TestMain(m *testing.M) { testleak.VerifyTestMain(m) }
