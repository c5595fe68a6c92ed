package config_test

import (
	"testing"

	"github.com/salvo-run/salvo/internal/testleak"
)

// No ignores: a started process must leave no goroutine behind.
func TestMain(m *testing.M) { testleak.VerifyTestMain(m) }
