package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/spf13/cobra"

	"github.com/salvo-run/salvo/internal/version"
	"github.com/salvo-run/salvo/pkg/client"
)

// app is one run of the CLI: its I/O, the global flags, and the NATS
// connection once a command opened it.
type app struct {
	io      stdio
	conn    connFlags
	jsonOut bool
	// ran is set once cobra has parsed the command line and runs a
	// command: errors before that are usage errors.
	ran bool
	nc  *nats.Conn
}

// run executes the command line args and returns the exit code. Errors
// are printed on io.err, prefixed "producer:".
func run(ctx context.Context, args []string, io stdio) int {
	a := &app{io: io}
	root := a.rootCmd()
	root.SetArgs(args)
	cmd, err := root.ExecuteContextC(ctx)
	if a.nc != nil {
		a.nc.Close()
	}
	code := exitCode(ctx, err, a.ran)
	var ee *exitError
	if err != nil && (!errors.As(err, &ee) || ee.err != nil) {
		fmt.Fprintln(io.err, "producer:", err)
		if code == exitUsage {
			fmt.Fprintf(io.err, "Run '%s --help' for usage.\n", cmd.CommandPath())
		}
	}
	return code
}

const rootLong = `producer submits OpenAI batch input files to salvo, follows them, cancels
them, lists them and writes their results. It talks to salvo through NATS
only: the batch API every worker serves on <prefix>.api.>.

Connection flags take their defaults from the nats CLI's environment
variables (NATS_URL, NATS_CREDS, NATS_NKEY, NATS_USER, NATS_PASSWORD,
NATS_CERT, NATS_KEY, NATS_CA) and SALVO_PREFIX; a flag wins over its
variable. The connection is tried once: an unreachable server fails within
--connect-timeout.

Exit codes:
  0    success; for watch and submit --wait, the batch completed
  1    the batch failed, expired or was cancelled; the input file has
       invalid lines; the batch API refused the call (not found, conflict)
  2    usage: unknown command or flag, missing or bad argument
  3    unreachable: NATS cannot be reached, or no batch service answers
  130  interrupted (SIGINT/SIGTERM) before the batch ended; it keeps running`

const rootExample = `  # Submit a file, follow it, fetch the results
  BATCH=$(producer submit requests.jsonl)
  producer watch $BATCH
  producer results $BATCH --output out.jsonl --errors err.jsonl

  # The same in one command
  producer submit --wait --output out.jsonl --errors err.jsonl requests.jsonl

  # Another server and deployment prefix, JSON for scripts
  NATS_URL=nats://nats.internal:4222 producer --prefix prod list --json`

func (a *app) rootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "producer",
		Short:         "Submit, follow and collect salvo batches over NATS",
		Long:          rootLong,
		Example:       rootExample,
		Args:          cobra.NoArgs,
		Version:       version.String(),
		SilenceErrors: true,
		SilenceUsage:  true,
		PersistentPreRun: func(*cobra.Command, []string) {
			a.ran = true
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			cmd.SetOut(a.io.err)
			_ = cmd.Help()
			return &exitError{code: exitUsage, err: errors.New("a command is required")}
		},
	}
	root.SetVersionTemplate("producer {{.Version}}\n")
	root.SetOut(a.io.out)
	root.SetErr(a.io.err)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &usageError{err: err} })
	pf := root.PersistentFlags()
	a.conn.register(pf)
	pf.BoolVar(&a.jsonOut, "json", false, "print JSON objects instead of text")
	root.AddCommand(
		a.submitCmd(), a.watchCmd(), a.statusCmd(), a.cancelCmd(),
		a.resultsCmd(), a.listCmd(), a.validateCmd(),
	)
	return root
}

// connect opens the NATS connection, once per run.
func (a *app) connect() (*nats.Conn, error) {
	if a.nc != nil {
		return a.nc, nil
	}
	if err := a.conn.resolve(a.io.getenv); err != nil {
		return nil, err
	}
	nc, err := a.conn.connect()
	if err != nil {
		return nil, err
	}
	a.nc = nc
	return nc, nil
}

// client is the batch API client of the deployment.
func (a *app) client() (*client.Client, error) {
	nc, err := a.connect()
	if err != nil {
		return nil, err
	}
	return client.New(nc, a.conn.prefix), nil
}

// call bounds one batch API call by --timeout.
func (a *app) call(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, a.conn.timeout)
}

// printJSON writes v as indented JSON on stdout.
func (a *app) printJSON(v any) error {
	enc := json.NewEncoder(a.io.out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// exactArgs is cobra.ExactArgs naming what is missing.
func exactArgs(names ...string) cobra.PositionalArgs {
	return func(_ *cobra.Command, args []string) error {
		switch {
		case len(args) < len(names):
			return usagef("missing %s", names[len(args)])
		case len(args) > len(names):
			return usagef("unexpected argument %q", args[len(names)])
		}
		return nil
	}
}
