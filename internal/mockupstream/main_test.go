package mockupstream

import (
	"testing"

	"github.com/salvo-run/salvo/internal/testleak"
)

// No ignores: Close waits for every handler and closes every connection.
func TestMain(m *testing.M) { testleak.VerifyTestMain(m) }
