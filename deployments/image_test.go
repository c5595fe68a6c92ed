package deployments_test

import (
	"context"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// imageBinaries are what the Dockerfile copies into the image.
var imageBinaries = []string{"worker", "producer", "gateway", "mockupstream"}

// The Dockerfile builds its binaries with build-static.sh and nothing else,
// and sets the in-container listener the worker's help documents.
func TestDockerfileBuildsWithTheCheckedScript(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("../Dockerfile")
	require.NoError(t, err)
	df := string(b)
	require.Contains(t, df, `sh deployments/build-static.sh /out`)
	require.Contains(t, df, "COPY --from=build /out/ /usr/local/bin/")
	require.Contains(t, df, "ENV SALVO_HTTP_ADDR=:8081")
	require.Contains(t, df, `ENTRYPOINT ["/usr/local/bin/worker"]`)
	require.Regexp(t, `(?m)^USER [1-9][0-9]*`, df, "the final image runs as a non-root user")
	require.NotContains(t, df, "go build", "the build command lives in build-static.sh only")
}

// The image's build step, run here as the Dockerfile runs it: every
// binary is static (no program interpreter, no shared library) and
// reports the version it was built with.
func TestContainerBinariesAreStatic(t *testing.T) {
	if testing.Short() {
		t.Skip("builds four binaries")
	}
	t.Parallel()
	out := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	const version = "v0.0.0-static-check"
	cmd := exec.CommandContext(ctx, "sh", "build-static.sh", out)
	cmd.Env = append(os.Environ(), "VERSION="+version)
	b, err := cmd.CombinedOutput()
	require.NoError(t, err, string(b))
	for _, name := range imageBinaries {
		path := filepath.Join(out, name)
		f, err := elf.Open(path)
		require.NoError(t, err, name)
		for _, p := range f.Progs {
			require.NotEqual(t, elf.PT_INTERP, p.Type, "%s asks for a dynamic loader", name)
		}
		libs, err := f.ImportedLibraries()
		require.NoError(t, err)
		require.Empty(t, libs, "%s links shared libraries", name)
		require.NoError(t, f.Close())

		vctx, vcancel := context.WithTimeout(ctx, 30*time.Second)
		got, err := exec.CommandContext(vctx, path, "--version").Output()
		vcancel()
		require.NoError(t, err, name)
		require.Equal(t, name+" "+version, strings.TrimSpace(string(got)))
	}
}
