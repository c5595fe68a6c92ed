package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/salvo-run/salvo/pkg/batchfile"
	"github.com/salvo-run/salvo/pkg/lifecycle"
)

func (a *app) validateCmd() *cobra.Command {
	var (
		window string
		limits fileLimits
	)
	cmd := &cobra.Command{
		Use:   "validate FILE.jsonl",
		Short: "Check a batch input file the way submit does, offline",
		Long: `validate reads an OpenAI batch input file (JSONL: custom_id, method, url,
body) and prints every bad line with its number and field, then a count of
the valid requests and rejected lines. It needs no connection.

Exit code: 0 when every line is valid, 1 when any line is bad or the file
is over --max-bytes or cannot be read, 2 for a bad --completion-window.`,
		Example: `  producer validate requests.jsonl
  producer validate --completion-window 1h --max-requests 100000 big.jsonl
  producer validate --json requests.jsonl | jq '.rejected[].line'`,
		Args: exactArgs("FILE.jsonl"),
		RunE: func(_ *cobra.Command, args []string) error {
			if err := limits.check(); err != nil {
				return err
			}
			return a.validate(args[0], window, limits)
		},
	}
	f := cmd.Flags()
	f.StringVar(&window, "completion-window", completionWindowDefault, "completion window the requests get (24h, 1h or a Go duration)")
	f.StringVar(&window, "window", completionWindowDefault, "alias of --completion-window")
	_ = f.MarkHidden("window")
	limits.register(f)
	return cmd
}

// validation is validate's --json output.
type validation struct {
	Path     string         `json:"path"`
	Lines    int            `json:"lines"`
	Valid    int            `json:"valid"`
	Rejected []rejectedLine `json:"rejected"`
}

// rejectedLine is a batchfile.LineError in JSON.
type rejectedLine struct {
	Line     int    `json:"line"`
	Code     string `json:"code"`
	Field    string `json:"field,omitempty"`
	Reason   string `json:"reason"`
	CustomID string `json:"custom_id,omitempty"`
}

func (a *app) validate(path, window string, limits fileLimits) error {
	if _, err := lifecycle.ParseCompletionWindow(window); err != nil {
		return usagef("--completion-window %q: %w", window, err)
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Size() > limits.maxBytes {
		return fmt.Errorf("%s: %d bytes, over --max-bytes %d", path, st.Size(), limits.maxBytes)
	}
	// Streamed, as submit reads it: one line at a time, the bad ones kept.
	var bad []*batchfile.LineError
	st, err := batchfile.Scan(f, batchfile.ScanOptions{BatchID: "validate", MaxRequests: limits.maxRequests, MaxBytes: limits.maxBytes},
		func(batchfile.Line) error { return nil }, func(le *batchfile.LineError) { bad = append(bad, le) })
	if errors.Is(err, batchfile.ErrInvalidOptions) {
		return usagef("%w", err)
	}
	if err != nil {
		return err
	}
	parsed := struct {
		Lines, Requests int
		Errors          []*batchfile.LineError
	}{st.Lines, st.Requests, bad}
	if a.jsonOut {
		v := validation{Path: path, Lines: parsed.Lines, Valid: parsed.Requests, Rejected: []rejectedLine{}}
		for _, le := range parsed.Errors {
			v.Rejected = append(v.Rejected, rejectedLine{Line: le.Line, Code: le.Code, Field: le.Field, Reason: le.Reason, CustomID: le.CustomID})
		}
		if err := a.printJSON(v); err != nil {
			return err
		}
	} else {
		for _, le := range parsed.Errors {
			fmt.Fprintf(a.io.out, "%s: %s\n", path, le.Error())
		}
		fmt.Fprintf(a.io.out, "%s: %d request(s) valid, %d line(s) rejected\n", path, parsed.Requests, len(parsed.Errors))
	}
	if len(parsed.Errors) > 0 {
		return &exitError{code: exitFailed}
	}
	return nil
}
