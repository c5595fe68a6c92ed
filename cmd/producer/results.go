package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/salvo-run/salvo/internal/producer"
)

func (a *app) resultsCmd() *cobra.Command {
	var output, errorsPath, input string
	var limits fileLimits
	cmd := &cobra.Command{
		Use:   "results BATCH",
		Short: "Write a batch's OpenAI output and error files",
		Long: `results writes the batch's results as OpenAI's two files: the output file
(one line per completed request: id, custom_id, response) and the error
file (every request that did not complete, with its id). Lines follow the
input file's order; when --input names the file that was submitted, its
rejected lines appear in the error file too, at their line and with their
custom_id (give the --max-requests and --max-bytes the submit used).
Results are streamed, never held in memory whole.

Without --output and --errors the files are BATCH.output.jsonl and
BATCH.errors.jsonl in the current directory. Run it once the batch has
ended (producer watch BATCH).`,
		Example: `  producer results nightly-1
  producer results nightly-1 --input requests.jsonl -o out.jsonl --errors err.jsonl`,
		Args: exactArgs("BATCH"),
		RunE: func(cmd *cobra.Command, args []string) error {
			id := args[0]
			if err := limits.check(); err != nil {
				return err
			}
			if output == "" {
				output = id + ".output.jsonl"
			}
			if errorsPath == "" {
				errorsPath = id + ".errors.jsonl"
			}
			nc, err := a.connect()
			if err != nil {
				return err
			}
			n, err := producer.WriteResults(cmd.Context(), nc, producer.ResultsOptions{
				BatchID: id, Output: output, Errors: errorsPath, Input: input, Prefix: a.conn.prefix,
				MaxRequests: limits.maxRequests, MaxBytes: limits.maxBytes,
			})
			if err != nil {
				return err
			}
			if a.jsonOut {
				return a.printJSON(written{Output: output, OutputLines: n.Output, Errors: errorsPath, ErrorLines: n.Errors})
			}
			reportWritten(a.io.out, output, errorsPath, n)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&output, "output", "o", "", "output file (default BATCH.output.jsonl)")
	f.StringVar(&errorsPath, "errors", "", "error file (default BATCH.errors.jsonl)")
	f.StringVar(&input, "input", "", "the submitted input file: its rejected lines go to the error file")
	limits.register(f)
	return cmd
}

// written is results' --json output.
type written struct {
	Output      string `json:"output"`
	OutputLines int    `json:"output_lines"`
	Errors      string `json:"errors"`
	ErrorLines  int    `json:"error_lines"`
}

// reportWritten says which files got how many lines.
func reportWritten(w io.Writer, output, errorsPath string, n producer.Written) {
	if output != "" {
		fmt.Fprintf(w, "%s: %d line(s)\n", output, n.Output)
	}
	if errorsPath != "" {
		fmt.Fprintf(w, "%s: %d line(s)\n", errorsPath, n.Errors)
	}
}
