// Command producer is salvo's client CLI for OpenAI-style batch files.
//
// Today it validates an input file the way submission will:
//
//	producer validate [-window 24h] batch.jsonl
//
// prints every bad line with its number and field, and exits 1 if any line
// is bad. Submitting, watching, cancelling and fetching results arrive with
// the producer issue, on top of the batch API; `make demo` shows that flow
// end to end meanwhile.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/salvo-run/salvo/pkg/batchfile"
)

func main() {
	code, err := run(os.Args[1:], os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "producer:", err)
	}
	os.Exit(code)
}

const usage = "usage: producer validate [-window 24h] FILE.jsonl"

func run(args []string, out io.Writer) (int, error) {
	if len(args) == 0 || args[0] != "validate" {
		return 2, errors.New(usage)
	}
	fs := flag.NewFlagSet("validate", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	window := fs.String("window", "24h", "completion window (24h, 1h or a Go duration)")
	if err := fs.Parse(args[1:]); err != nil {
		return 2, fmt.Errorf("%w\n%s", err, usage)
	}
	if fs.NArg() != 1 {
		return 2, errors.New(usage)
	}
	return validate(fs.Arg(0), *window, out)
}

func validate(path, window string, out io.Writer) (int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 2, err
	}
	defer f.Close()
	parsed, err := batchfile.Parse(f, batchfile.ParseOptions{
		BatchID: "validate", CreatedAt: time.Now().UTC(), CompletionWindow: window,
	})
	if err != nil {
		return 2, err
	}
	for _, le := range parsed.Errors {
		fmt.Fprintf(out, "%s: %s\n", path, le.Error())
	}
	fmt.Fprintf(out, "%s: %d request(s) valid, %d line(s) rejected\n", path, len(parsed.Requests), len(parsed.Errors))
	if len(parsed.Errors) > 0 {
		return 1, nil
	}
	return 0, nil
}
