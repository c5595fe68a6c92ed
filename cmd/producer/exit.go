package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/salvo-run/salvo/internal/producer"
	"github.com/salvo-run/salvo/pkg/client"
)

// Exit codes (see the package documentation).
const (
	exitOK          = 0
	exitFailed      = 1
	exitUsage       = 2
	exitUnreachable = 3
	// exitInterrupted is 128 + SIGINT, what shells report for Ctrl-C.
	exitInterrupted = 130
)

// exitError ends a command with code. A nil err ends it without a
// message (the command has already said why).
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }

// usageError is a bad command line found by a command itself.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error {
	return &usageError{err: fmt.Errorf(format, args...)}
}

// unreachableError: NATS could not be reached.
type unreachableError struct {
	url  string
	err  error
	hint string // the flags to check
}

func (e *unreachableError) Error() string {
	return fmt.Sprintf("cannot reach NATS at %s: %v %s", e.url, e.err, e.hint)
}

func (e *unreachableError) Unwrap() error { return e.err }

// errInterrupted: a signal cancelled the command.
var errInterrupted = producer.ErrInterrupted

// exitCode maps what a command returned to the process's exit code. ran
// reports whether cobra got as far as running the command: an error
// before that (an unknown command or flag, a wrong number of arguments) is
// a usage error.
func exitCode(ctx context.Context, err error, ran bool) int {
	var (
		ee *exitError
		ue *usageError
		ne *unreachableError
	)
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ee):
		return ee.code
	case errors.As(err, &ue):
		return exitUsage
	case errors.As(err, &ne), errors.Is(err, client.ErrNoService):
		return exitUnreachable
	case errors.Is(err, errInterrupted), ctx.Err() != nil && errors.Is(err, context.Canceled):
		return exitInterrupted
	case !ran:
		return exitUsage
	}
	return exitFailed
}
