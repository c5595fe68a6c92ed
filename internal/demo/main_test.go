package demo_test

import (
	"testing"

	"go.uber.org/goleak"
)

// No ignores: every run must leave no goroutine behind (nats-server,
// redis clients, miniredis, the mock and the worker are all stopped).
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
