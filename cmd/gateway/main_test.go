package main

import (
	"testing"

	"github.com/salvo-run/salvo/internal/testbin"
	"github.com/salvo-run/salvo/internal/testleak"
)

func TestMain(m *testing.M) {
	testleak.VerifyTestMainThen(m, testbin.Remove)
}
