package client_test

import (
	"testing"

	"github.com/salvo-run/salvo/internal/testleak"
)

// No ignores: every test stops its worker and closes its connections,
// embedded nats-server and redis-server at cleanup.
func TestMain(m *testing.M) { testleak.VerifyTestMain(m) }
