// Package testbin builds the worker, producer and gateway binaries once
// per test process for the tests that run them as child processes
// (cmd/worker's, pkg/worker's crash, recovery and chaos tests, the
// producer's kill test, the memory benchmarks), and measures such a
// child's peak RSS (PollRSS). It is test scaffolding: production code
// never imports it (depguard).
package testbin

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// binary is one command built once per test process.
type binary struct {
	once sync.Once
	path string
	err  error
}

var (
	dirOnce sync.Once
	dir     string
	dirErr  error

	worker, producer, gateway binary
)

// Worker returns the path of cmd/worker built for this test process,
// building it on first use; a failed build fails t.
func Worker(t testing.TB) string { return build(t, &worker, "worker") }

// Producer returns the path of cmd/producer built for this test process,
// building it on first use; a failed build fails t.
func Producer(t testing.TB) string { return build(t, &producer, "producer") }

// Gateway returns the path of cmd/gateway built for this test process,
// building it on first use; a failed build fails t.
func Gateway(t testing.TB) string { return build(t, &gateway, "gateway") }

func build(t testing.TB, b *binary, name string) string {
	t.Helper()
	dirOnce.Do(func() { dir, dirErr = os.MkdirTemp("", "salvo-bin-") })
	if dirErr != nil {
		t.Fatalf("testbin: %v", dirErr)
	}
	b.once.Do(func() {
		b.path = filepath.Join(dir, name)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		out, err := exec.CommandContext(ctx, "go", "build", "-o", b.path, "github.com/salvo-run/salvo/cmd/"+name).CombinedOutput()
		if err != nil {
			b.err = fmt.Errorf("go build cmd/%s: %w\n%s", name, err, out)
		}
	})
	if b.err != nil {
		t.Fatalf("testbin: %v", b.err)
	}
	return b.path
}

// Remove deletes what Worker, Producer and Gateway built; call it from TestMain after m.Run.
func Remove() {
	if dir != "" {
		_ = os.RemoveAll(dir)
	}
}
