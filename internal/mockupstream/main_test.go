package mockupstream

import (
	"testing"

	"go.uber.org/goleak"
)

// No ignores: Close waits for every handler and closes every connection.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
