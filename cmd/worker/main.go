// Command worker is salvo's daemon: it consumes request messages from NATS
// JetStream, runs them against the upstream APIs its routes name, records
// their lifecycle in Redis and publishes one result per request.
//
// Configuration comes from built-in defaults, an optional YAML file
// (-config / SALVO_CONFIG), SALVO_* environment variables and flags, each
// overriding the one before. SIGTERM or SIGINT stops it gracefully; SIGHUP
// reloads routes, retry policy and concurrency limits from the same sources.
package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/salvo-run/salvo/pkg/httpclient"
	"github.com/salvo-run/salvo/pkg/queue"
	"github.com/salvo-run/salvo/pkg/state"
	"github.com/salvo-run/salvo/pkg/worker"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "worker:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	settings, err := worker.Load(args, os.Getenv)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	log := newLogger(settings.LogLevel)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	nc, err := nats.Connect(settings.NATSURL,
		nats.Name("salvo-worker"),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250*time.Millisecond),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			log.Warn().Err(err).Msg("nats disconnected")
		}),
		nats.ReconnectHandler(func(_ *nats.Conn) { log.Info().Msg("nats reconnected") }),
	)
	if err != nil {
		return fmt.Errorf("nats_url: connect: %w", err)
	}
	defer nc.Close()

	rdb, err := settings.RedisClient()
	if err != nil {
		return err
	}
	defer rdb.Close()
	pingCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	err = rdb.Ping(pingCtx).Err()
	cancel()
	if err != nil {
		return fmt.Errorf("redis: ping: %w", err)
	}

	store, err := state.New(rdb, settings.StateConfig())
	if err != nil {
		return err
	}
	q, err := queue.New(nc, settings.QueueConfig(), log)
	if err != nil {
		return err
	}
	if err := q.Provision(ctx); err != nil {
		return fmt.Errorf("provision streams: %w", err)
	}
	httpCfg, err := settings.HTTPConfig(os.Getenv)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	up, err := httpclient.New(httpCfg, log)
	if err != nil {
		return err
	}
	defer up.Close()

	w, err := worker.New(worker.Deps{Store: store, Queue: q, Upstream: up, Logger: log}, settings.EngineConfig(""))
	if err != nil {
		return err
	}
	if err := w.Start(ctx); err != nil {
		return err
	}

	srv := healthServer(nc, rdb, w)
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", settings.HTTPAddr)
	if err != nil {
		_ = w.Stop(context.Background())
		return fmt.Errorf("http_addr: %w", err)
	}
	log.Info().Str("addr", ln.Addr().String()).Msg("health endpoints listening (/healthz, /readyz)")
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
			reload(args, w, up, log)
		}
	}

	log.Info().Msg("signal received, shutting down")
	stopCtx, cancelStop := context.WithTimeout(context.Background(), settings.EngineConfig("").WithDefaults().ShutdownGrace+30*time.Second)
	defer cancelStop()
	err = w.Stop(stopCtx)
	shutCtx, cancelShut := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancelShut()
	_ = srv.Shutdown(shutCtx)
	return err
}

// reload re-reads the configuration and applies what can change at runtime:
// routes and timeouts, retry policy, concurrency limits.
func reload(args []string, w *worker.Worker, up *httpclient.Client, log zerolog.Logger) {
	s, err := worker.Load(args, os.Getenv)
	if err != nil {
		log.Error().Err(err).Msg("reload: config invalid, keeping the running one")
		return
	}
	httpCfg, err := s.HTTPConfig(os.Getenv)
	if err != nil {
		log.Error().Err(err).Msg("reload: upstream config invalid, keeping the running one")
		return
	}
	if err := up.SetConfig(httpCfg); err != nil {
		log.Error().Err(err).Msg("reload: upstream config refused")
		return
	}
	if err := w.Reconfigure(s.Retry.Policy(), s.Concurrency); err != nil {
		log.Error().Err(err).Msg("reload: engine config refused")
	}
}

func healthServer(nc *nats.Conn, rdb redis.UniversalClient, w *worker.Worker) *http.Server {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(rw http.ResponseWriter, _ *http.Request) {
		rw.WriteHeader(http.StatusOK)
		_, _ = rw.Write([]byte("ok\n"))
	})
	mux.HandleFunc("/readyz", func(rw http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		var problems []string
		if !nc.IsConnected() {
			problems = append(problems, "nats: "+nc.Status().String())
		}
		if err := rdb.Ping(ctx).Err(); err != nil {
			problems = append(problems, "redis: "+err.Error())
		}
		if err := w.Healthy(); err != nil {
			problems = append(problems, "consumer: "+err.Error())
		}
		if len(problems) > 0 {
			rw.WriteHeader(http.StatusServiceUnavailable)
			for _, p := range problems {
				_, _ = rw.Write([]byte(p + "\n"))
			}
			return
		}
		_, _ = rw.Write([]byte("ready\n"))
	})
	return &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
}

func newLogger(level string) zerolog.Logger {
	lvl, err := zerolog.ParseLevel(level)
	if err != nil {
		lvl = zerolog.InfoLevel
	}
	return zerolog.New(os.Stderr).Level(lvl).With().Timestamp().Logger()
}
