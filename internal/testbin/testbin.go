// Package testbin builds the worker binary once per test process for the
// tests that run it as a child process (cmd/worker's, pkg/worker's crash,
// recovery and chaos tests). It is test scaffolding: production code never
// imports it (depguard).
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

var (
	once    sync.Once
	dir     string
	workerP string
	err     error
)

// Worker returns the path of cmd/worker built for this test process,
// building it on first use; a failed build fails t.
func Worker(t testing.TB) string {
	t.Helper()
	once.Do(func() {
		if dir, err = os.MkdirTemp("", "salvo-worker-bin-"); err != nil {
			return
		}
		workerP = filepath.Join(dir, "worker")
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		out, berr := exec.CommandContext(ctx, "go", "build", "-o", workerP, "github.com/salvo-run/salvo/cmd/worker").CombinedOutput()
		if berr != nil {
			err = fmt.Errorf("go build cmd/worker: %w\n%s", berr, out)
		}
	})
	if err != nil {
		t.Fatalf("testbin: %v", err)
	}
	return workerP
}

// Remove deletes what Worker built; call it from TestMain after m.Run.
func Remove() {
	if dir != "" {
		_ = os.RemoveAll(dir)
	}
}
