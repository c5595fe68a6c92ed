package main

import (
	"github.com/spf13/pflag"

	"github.com/salvo-run/salvo/internal/producer"
)

// The input file limits submit and validate enforce by default: OpenAI's
// Batch API limits, so a file salvo accepts is one OpenAI accepts too.
// Both are salvo's own caps as well and can be raised with the flags;
// what salvo cannot raise is one line's size (one NATS message, see
// batchfile.MaxLineBytesDefault). One endpoint per file is OpenAI's rule.
const (
	// completionWindowDefault is the batch API's default window.
	completionWindowDefault       = "24h"
	maxRequestsDefault            = producer.MaxRequestsDefault
	maxBytesDefault         int64 = producer.MaxBytesDefault
)

// fileLimits are the --max-requests and --max-bytes flags.
type fileLimits struct {
	maxRequests int
	maxBytes    int64
}

func (l *fileLimits) register(f *pflag.FlagSet) {
	f.IntVar(&l.maxRequests, "max-requests", maxRequestsDefault,
		"most requests in the file (OpenAI's limit; salvo's own cap, raise it freely)")
	f.Int64Var(&l.maxBytes, "max-bytes", maxBytesDefault,
		"largest file in bytes (OpenAI's 200 MB; salvo's own cap, raise it freely)")
}

func (l *fileLimits) check() error {
	switch {
	case l.maxRequests < 1:
		return usagef("--max-requests %d must be at least 1", l.maxRequests)
	case l.maxRequests > producer.MaxRequestsCeiling:
		return usagef("--max-requests %d is above salvo's ceiling of %d", l.maxRequests, producer.MaxRequestsCeiling)
	case l.maxBytes < 1:
		return usagef("--max-bytes %d must be at least 1", l.maxBytes)
	}
	return nil
}
