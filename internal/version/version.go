// Package version reports which build of salvo a binary is, for the
// commands' --version flags.
package version

import (
	"runtime/debug"
	"strings"
)

// Version is set at link time by release and container builds
// (deployments/build-static.sh and `make build` pass
// -ldflags "-X github.com/salvo-run/salvo/internal/version.Version=…",
// the output of `git describe` or the image's VERSION build argument).
// Empty in a plain `go build`: String then falls back to the build info.
var Version string

// String is Version when it was set at link time, else what the Go
// toolchain stamped into the binary: the module version of a `go install
// …@version`, or the VCS revision (12 hex digits, "-dirty" for local
// changes) of a build from a checkout; "devel" when neither is known.
func String() string {
	if v := strings.TrimSpace(Version); v != "" {
		return v
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "devel"
	}
	return fromBuildInfo(info)
}

// fromBuildInfo is String's fallback, separate so tests can feed it.
func fromBuildInfo(info *debug.BuildInfo) string {
	if v := info.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	var rev string
	var dirty bool
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev == "" {
		return "devel"
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if dirty {
		rev += "-dirty"
	}
	return rev
}

// Line is the one line a --version flag prints: "<command> <version>".
func Line(command string) string { return command + " " + String() }
