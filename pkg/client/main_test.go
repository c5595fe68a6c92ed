package client_test

import (
	"testing"

	"go.uber.org/goleak"
)

// No ignores: every test stops its worker and closes its connections,
// embedded nats-server and redis-server at cleanup.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
