package worker_test

import (
	"os"
	"testing"

	"github.com/salvo-run/salvo/internal/testbin"
	"github.com/salvo-run/salvo/internal/testleak"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testbin.Remove()
	if code != 0 {
		os.Exit(code)
	}
	testleak.VerifyTestMain(noopM{})
}

// noopM lets goleak check after the real run (and after the worker binary
// built for the child-process tests was removed).
type noopM struct{}

func (noopM) Run() int { return 0 }
