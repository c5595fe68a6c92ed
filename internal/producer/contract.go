// Package producer does the work behind the producer CLI's submit and
// results commands: it streams an OpenAI batch input file into salvo and
// writes the batch's output and error files back in input order.
//
// This file holds the contract only; the implementation replaces it.
package producer

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"

	"github.com/salvo-run/salvo/pkg/api"
	"github.com/salvo-run/salvo/pkg/batchfile"
)

// errNotBuilt is returned until the implementation lands.
var errNotBuilt = errors.New("not built")

// SubmitOptions say which file to submit and how.
type SubmitOptions struct {
	// Path is the OpenAI batch input file (JSONL).
	Path string
	// BatchID is the client-chosen batch id ("" lets the service pick one).
	BatchID string
	// CompletionWindow is the batch's window ("24h", "1h", …).
	CompletionWindow string
	// Metadata is attached to the batch.
	Metadata map[string]string
	// SkipInvalid publishes the valid lines and reports the rest.
	SkipInvalid bool
	// MaxRequests bounds the requests of the file.
	MaxRequests int
	// MaxBytes bounds the file's size.
	MaxBytes int64
	// Prefix is the deployment's subject prefix.
	Prefix string
}

// SubmitResult is what Submit did.
type SubmitResult struct {
	Batch     api.BatchObject
	Requests  int
	Rejected  []*batchfile.LineError
	Published int
}

// InvalidFileError: the file has bad lines and nothing was published.
type InvalidFileError struct {
	Path   string
	Errors []*batchfile.LineError
	Lines  int
}

func (e *InvalidFileError) Error() string {
	return fmt.Sprintf("%s: %d of %d line(s) invalid", e.Path, len(e.Errors), e.Lines)
}

// Submit validates the file, creates the batch and publishes its requests.
func Submit(ctx context.Context, nc *nats.Conn, o SubmitOptions) (SubmitResult, error) {
	return SubmitResult{}, errNotBuilt
}

// ResultsOptions say which batch's results to write where.
type ResultsOptions struct {
	BatchID string
	// Output is the path of the OpenAI output file.
	Output string
	// Errors is the path of the OpenAI error file.
	Errors string
	// Input is the batch's input file, to order the results and report
	// rejected lines.
	Input  string
	Prefix string
}

// Written counts the lines written to each file.
type Written struct {
	Output int
	Errors int
}

// WriteResults writes the batch's output and error files in input order.
func WriteResults(ctx context.Context, nc *nats.Conn, o ResultsOptions) (Written, error) {
	return Written{}, errNotBuilt
}
