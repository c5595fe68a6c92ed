package invariant_test

import (
	"testing"

	"github.com/salvo-run/salvo/internal/testleak"
)

func TestMain(m *testing.M) { testleak.VerifyTestMain(m) }
