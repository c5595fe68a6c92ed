package main

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

// noopM lets goleak check after the real run and the binary's removal.
type noopM struct{}

func (noopM) Run() int { return 0 }
