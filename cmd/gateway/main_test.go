package main

import (
	"os"
	"testing"

	"go.uber.org/goleak"

	"github.com/salvo-run/salvo/internal/testbin"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testbin.Remove()
	if code != 0 {
		os.Exit(code)
	}
	goleak.VerifyTestMain(noopM{})
}

// noopM lets goleak check after the real run and the binary's removal.
type noopM struct{}

func (noopM) Run() int { return 0 }
