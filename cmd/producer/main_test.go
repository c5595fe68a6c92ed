package main

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/salvo-run/salvo/internal/testleak"
	"github.com/salvo-run/salvo/internal/testlog"
)

// No ignores: the CLI, the embedded servers and the in-process worker
// leave no goroutine behind.
func TestMain(m *testing.M) { testleak.VerifyTestMain(m) }

// result is one run of the CLI.
type result struct {
	code     int
	out, err string
	took     time.Duration
}

// cli runs the command line args with env as the whole environment. The
// bound only stops a run that hangs: a 10,000-request submit --wait takes
// about 50 s on a loaded 2-core machine, so it is far above that.
func cli(t *testing.T, env map[string]string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var out, errOut testlog.Buffer
	start := time.Now()
	code := run(ctx, args, testIO(&out, &errOut, env))
	r := result{code: code, out: out.String(), err: errOut.String(), took: time.Since(start)}
	t.Logf("producer %q → %d\nstdout:\n%s\nstderr:\n%s", args, r.code, r.out, r.err)
	return r
}

func testIO(out, errOut io.Writer, env map[string]string) stdio {
	return stdio{out: out, err: errOut, getenv: func(k string) string { return env[k] }}
}
