package httpclient

import (
	"testing"

	"github.com/salvo-run/salvo/internal/testleak"
)

// No ignores: every test closes its clients and servers, so no transport or
// handler goroutine may outlive the suite.
func TestMain(m *testing.M) { testleak.VerifyTestMain(m) }
