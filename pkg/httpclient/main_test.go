package httpclient

import (
	"testing"

	"go.uber.org/goleak"
)

// No ignores: every test closes its clients and servers, so no transport or
// handler goroutine may outlive the suite.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
