// Command worker is salvo's daemon: it consumes request messages from NATS
// JetStream, runs them against the upstream APIs its routes name, records
// their lifecycle in Redis and publishes one result per request.
//
// Configuration comes from built-in defaults, an optional YAML file
// (-config / SALVO_CONFIG), SALVO_* environment variables and flags, each
// overriding the one before; `worker -help` lists them all (see
// internal/config). SIGTERM or SIGINT stops it gracefully; SIGHUP reloads
// routes, retry policy and concurrency limits from the same sources (a new
// retry budget updates MaxDeliver of the model consumers).
//
// A worker creates the streams and consumers it needs when they are
// missing, and refuses to start when existing ones have other settings:
// they are shared by every worker. `worker -apply-streams` (same settings
// otherwise) changes them to its settings and exits.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/salvo-run/salvo/internal/config"
	"github.com/salvo-run/salvo/internal/telemetry"
	"github.com/salvo-run/salvo/internal/version"
)

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr, os.Getenv); err != nil {
		fmt.Fprintln(os.Stderr, "worker:", err)
		os.Exit(1)
	}
}

// run runs the worker until SIGTERM or SIGINT. -help prints the usage and
// -version the version to stdout and return nil.
func run(args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	if len(args) == 1 && (args[0] == "-version" || args[0] == "--version") {
		fmt.Fprintln(stdout, version.Line("worker"))
		return nil
	}
	settings, action, err := config.LoadAction(args, getenv)
	if errors.Is(err, config.ErrHelp) {
		config.Usage(stdout)
		_, _ = io.WriteString(stdout, usageTail)
		return nil
	}
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	log := newLogger(stderr, settings.LogLevel)
	if action == config.ActionApplyStreams {
		return applyStreams(settings, stdout, log)
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	tel, err := telemetry.Setup(ctx, "salvo-worker", getenv)
	if err != nil {
		return err
	}
	defer shutdownTelemetry(tel, log)
	p, err := config.Start(ctx, settings, config.Options{Logger: &log, Getenv: getenv, Meter: tel.Meter, Tracer: tel.Tracer})
	if err != nil {
		return err
	}
	srv := healthServer(p, tel.Handler(), settings.PProf)
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", settings.HTTPAddr)
	if err != nil {
		_ = p.Stop(context.Background())
		return fmt.Errorf("http_addr: %w", err)
	}
	log.Info().Str("addr", ln.Addr().String()).Bool("tracing", tel.Tracer != nil).Msg("health endpoints listening (/healthz, /readyz, /metrics)")
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error().Err(err).Str("addr", settings.HTTPAddr).Msg("health endpoint failed")
		}
	}()

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for done := false; !done; {
		select {
		case <-ctx.Done():
			done = true
		case <-hup:
			reload(ctx, args, getenv, p, log)
		}
	}

	log.Info().Msg("signal received, shutting down")
	stopCtx, cancelStop := context.WithTimeout(context.Background(), p.StopTimeout())
	defer cancelStop()
	err = p.Stop(stopCtx)
	shutCtx, cancelShut := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancelShut()
	_ = srv.Shutdown(shutCtx)
	return err
}

// usageTail follows config.Usage in -help: the flag handled here and the
// container image's listener (deployments/README.md).
const usageTail = `
  -version, --version
        print the version (set at build time, else the VCS revision) and exit

Container image: the Dockerfile sets SALVO_HTTP_ADDR=:8081, so inside a
container /healthz, /readyz and /metrics listen on every interface (probes
and Prometheus reach them from outside the container). The binary's own
default stays 127.0.0.1:8081: on a bare host the listener is private until
http_addr says otherwise.
`

// applyStreamsTimeout bounds -apply-streams.
const applyStreamsTimeout = time.Minute

// applyStreams changes the streams and consumers on the server to the
// settings, prints what it changed and returns.
func applyStreams(settings config.Settings, stdout io.Writer, log zerolog.Logger) error {
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer cancel()
	ctx, cancelTimeout := context.WithTimeout(ctx, applyStreamsTimeout)
	defer cancelTimeout()
	changes, err := config.ApplyStreams(ctx, settings, config.Options{Logger: &log})
	if err != nil {
		return err
	}
	for _, c := range changes {
		fmt.Fprintf(stdout, "changed %s: %s %s -> %s\n", c.Object, c.Field, c.Server, c.Worker)
	}
	fmt.Fprintf(stdout, "streams and consumers match this worker's settings (%d change(s))\n", len(changes))
	return nil
}

// reload re-reads the configuration and applies what can change at runtime.
func reload(ctx context.Context, args []string, getenv func(string) string, p *config.Process, log zerolog.Logger) {
	s, err := config.Load(args, getenv)
	if err == nil {
		err = p.Reload(ctx, s)
	}
	if err != nil {
		log.Error().Err(err).Msg("reload: config refused, keeping the running one")
		return
	}
	log.Info().Msg("reload: config applied")
}

// shutdownTelemetry flushes the spans still buffered, bounded.
func shutdownTelemetry(tel *telemetry.Providers, log zerolog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := tel.Shutdown(ctx); err != nil {
		log.Warn().Err(err).Msg("telemetry shutdown")
	}
}

func healthServer(p *config.Process, metrics http.Handler, withPProf bool) *http.Server {
	mux := http.NewServeMux()
	mux.Handle("/metrics", metrics)
	if withPProf {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	mux.HandleFunc("/healthz", func(rw http.ResponseWriter, _ *http.Request) {
		rw.WriteHeader(http.StatusOK)
		_, _ = rw.Write([]byte("ok\n"))
	})
	mux.HandleFunc("/statusz", func(rw http.ResponseWriter, _ *http.Request) {
		rw.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(rw).Encode(map[string]any{"escalations": p.Worker.EscalationStats()})
	})
	// /limits: this worker's view of each upstream key × model — budgets
	// (configured or learned), whether the Redis fallback is on, the
	// adaptive concurrency limit.
	mux.HandleFunc("/limits", func(rw http.ResponseWriter, _ *http.Request) {
		rw.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(rw).Encode(p.Worker.Limits())
	})
	mux.HandleFunc("/readyz", func(rw http.ResponseWriter, r *http.Request) {
		if problems := p.Readiness(r.Context()).Problems(); len(problems) > 0 {
			rw.WriteHeader(http.StatusServiceUnavailable)
			for _, msg := range problems {
				_, _ = rw.Write([]byte(msg + "\n"))
			}
			return
		}
		_, _ = rw.Write([]byte("ready\n"))
	})
	return &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
}

func newLogger(w io.Writer, level string) zerolog.Logger {
	lvl, err := zerolog.ParseLevel(level)
	if err != nil {
		lvl = zerolog.InfoLevel
	}
	return zerolog.New(w).Level(lvl).With().Timestamp().Logger()
}
