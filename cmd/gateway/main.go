// Command gateway serves the OpenAI Batch API over HTTP on top of a salvo
// deployment (internal/gateway): point an OpenAI SDK's base URL at it.
//
//	gateway [-addr 127.0.0.1:8080] [-nats-url nats://127.0.0.1:4222] [-prefix salvo]
//	        [-creds file | -nkey file | -user u -password p] [-tlsca file] [-tlscert file -tlskey file]
//	gateway hash-key KEY
//
// Bearer keys come from SALVO_GATEWAY_KEYS as comma-separated
// "sha256=tenant" pairs, the SHA-256 (hex) of each key as `gateway hash-key
// KEY` prints it: the keys themselves are never configured, kept or
// logged. Completion windows, limits and file lifetime have flags too;
// every flag has a SALVO_GATEWAY_* variable (the flag upper-cased, '-' →
// '_'), the flag winning. The NATS connection flags are the nats CLI's, as
// the producer's: -creds, -nkey, -user, -password, -tlscert, -tlskey,
// -tlsca, read from NATS_URL, NATS_CREDS, NATS_NKEY, NATS_USER,
// NATS_PASSWORD, NATS_CERT, NATS_KEY and NATS_CA when neither the flag nor
// its SALVO_GATEWAY_* variable is given (a -user without -password is a
// token).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/salvo-run/salvo/internal/gateway"
	"github.com/salvo-run/salvo/internal/natsconn"
	"github.com/salvo-run/salvo/internal/telemetry"
	"github.com/salvo-run/salvo/internal/version"
)

// envPrefix starts the gateway's own variables: each flag's, and KEYS.
const envPrefix = "SALVO_GATEWAY_"

func main() {
	if err := run(os.Args[1:], os.Getenv); err != nil {
		fmt.Fprintln(os.Stderr, "gateway:", err)
		os.Exit(1)
	}
}

// run is the command with its arguments and environment (getenv).
func run(args []string, getenv func(string) string) error {
	if len(args) == 2 && args[0] == "hash-key" {
		fmt.Println(gateway.HashKey(args[1])) //nolint:forbidigo // the command's output
		return nil
	}
	fs := flag.NewFlagSet("gateway", flag.ContinueOnError)
	addr := fs.String("addr", gateway.AddrDefault, "listen address")
	conn := natsconn.Flags{ServerFlag: "nats-url", EnvPrefix: envPrefix}
	fs.StringVar(&conn.Server, "nats-url", nats.DefaultURL, "NATS server URLs, comma-separated (NATS_URL)")
	conn.Register(fs)
	prefix := fs.String("prefix", "salvo", "the deployment's subject prefix")
	windows := fs.String("windows", strings.Join(gateway.WindowsDefault, ","), "accepted completion windows")
	maxBytes := fs.Int64("max-file-bytes", gateway.MaxFileBytesDefault, "largest upload in bytes (OpenAI's 200 MB)")
	maxRequests := fs.Int("max-requests", gateway.MaxRequestsDefault, "most requests per batch (OpenAI's 50,000)")
	fileTTL := fs.Duration("file-ttl", gateway.FileTTLDefault, "longest life of a file")
	mixed := fs.Bool("mixed-models", false, "accept files whose lines name several models (OpenAI requires one)")
	showVersion := fs.Bool("version", false, "print the version and exit")
	// Every flag's SALVO_GATEWAY_* variable sets its default; the flag wins.
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		name := envPrefix + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v := getenv(name); v != "" && envErr == nil {
			if err := fs.Set(f.Name, v); err != nil {
				envErr = fmt.Errorf("%s: %w", name, err)
			}
		}
	})
	if envErr != nil {
		return envErr
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *showVersion {
		fmt.Println(version.Line("gateway")) //nolint:forbidigo // the command's output
		return nil
	}
	// Flags given, or set by their SALVO_GATEWAY_* variable, win over the
	// nats CLI's variables.
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	conn.FromEnv(func(name string) bool { return given[name] }, getenv)
	keys, err := parseKeys(getenv(envPrefix + "KEYS"))
	if err != nil {
		return err
	}
	log := zerolog.New(os.Stderr).With().Timestamp().Logger()
	nc, err := conn.Config().Connect(nats.Name("salvo-gateway"), nats.MaxReconnects(-1))
	var ce *natsconn.ConnectError
	switch {
	case errors.As(err, &ce):
		return fmt.Errorf("nats: %w %s", ce, ce.Hint(conn.Name))
	case err != nil:
		return errors.New(conn.Problem(err))
	}
	defer nc.Close()
	tel, err := telemetry.Setup(context.Background(), "salvo-gateway", getenv)
	if err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = tel.Shutdown(sctx) // flushes the spans
	}()
	srv, err := gateway.New(nc, gateway.Config{
		Addr: *addr, Prefix: *prefix, Keys: keys, Windows: strings.Split(*windows, ","),
		MaxFileBytes: *maxBytes, MaxRequests: *maxRequests, FileTTL: *fileTTL, MixedModels: *mixed,
		Meter: tel.Meter, Tracer: tel.Tracer,
	}, log)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := srv.Start(ctx); err != nil {
		return err
	}
	defer srv.Close()
	// Timeouts that a slow client cannot hold open forever: headers must
	// come within 10 s; a 200 MB body gets 30 minutes.
	// /metrics (Prometheus text, no key needed: no id, no secret in it)
	// beside the API.
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", tel.Handler())
	mux.Handle("/", srv.Handler())
	hs := &http.Server{
		Addr: *addr, Handler: mux, ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout: 30 * time.Minute, WriteTimeout: 30 * time.Minute, IdleTimeout: 2 * time.Minute,
		MaxHeaderBytes: 64 << 10,
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.ListenAndServe() }()
	log.Info().Str("addr", *addr).Str("nats", nc.ConnectedUrlRedacted()).Int("tenants_keys", len(keys)).Msg("gateway serving")
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// parseKeys reads "sha256=tenant,…".
func parseKeys(v string) (map[string]string, error) {
	keys := map[string]string{}
	for _, pair := range strings.Split(v, ",") {
		pair = strings.TrimSpace(pair)
		if pair == "" {
			continue
		}
		hash, tenant, ok := strings.Cut(pair, "=")
		if !ok {
			return nil, errors.New("SALVO_GATEWAY_KEYS: each entry is sha256=tenant (gateway hash-key KEY prints the hash)")
		}
		keys[strings.ToLower(hash)] = tenant
	}
	return keys, nil
}
