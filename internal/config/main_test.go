package config_test

import (
	"testing"

	"go.uber.org/goleak"
)

// No ignores: a started process must leave no goroutine behind.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
