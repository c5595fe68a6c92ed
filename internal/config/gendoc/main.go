// Command gendoc writes the configuration reference, docs/CONFIG.md, from
// the worker's settings: every key with its environment variable, flag,
// type and default (internal/config.Reference) and its description — the
// doc comment of the Go field that holds it, read from the source, so a
// setting is described in one place, next to its code.
//
//	go generate ./internal/config      # or: go run ./internal/config/gendoc
//
// The test beside it fails when docs/CONFIG.md differs from what this
// command writes, and when a setting has no doc comment.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
)

// outputDefault is the reference's path from the module root.
const outputDefault = "docs/CONFIG.md"

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "gendoc:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("gendoc", flag.ContinueOnError)
	root := fs.String("root", "", "module root (default: the directory above holding go.mod)")
	out := fs.String("o", outputDefault, "output file, relative to the module root")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *root == "" {
		r, err := moduleRoot()
		if err != nil {
			return err
		}
		*root = r
	}
	var b bytes.Buffer
	if err := render(&b, *root); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(*root, *out), b.Bytes(), 0o644)
}

// moduleRoot is the nearest directory at or above the working directory
// that holds go.mod.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for range 64 {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			break
		}
		dir = parent
	}
	return "", fmt.Errorf("no go.mod at or above the working directory")
}
