package config

import (
	"fmt"
	"io"
	"strings"
)

// Usage writes the worker's help: every flag, the config file, the order
// of precedence, the SALVO_ rule and every key with its variable.
func Usage(w io.Writer) {
	var b strings.Builder
	b.WriteString(`Usage: worker [flags]

Consumes LLM requests from NATS JetStream, calls the upstream APIs its routes
name, records each request's lifecycle in Redis and publishes its result.

Every setting has a built-in default. Each layer overrides the one before:

  defaults < YAML file (-config, else $SALVO_CONFIG) < SALVO_* environment < flags

Flags:
  -config file
        YAML config file (see deployments/worker.example.yaml)
        (env SALVO_CONFIG)
`)
	for _, f := range flagSpecs {
		fmt.Fprintf(&b, "  -%s %s\n        %s\n        (key %s, env %s)\n", f.name, f.arg, f.usage, f.key, EnvName(f.key))
	}
	b.WriteString(`  -apply-streams
        change the streams, object store and consumers on the NATS server to
        these settings (creating what is missing), print the changes and exit.
        Streams and consumers are shared by every worker: a worker creates what
        is missing at start but refuses to start when what exists has other
        settings (streams.*, max_deliver derived from retry.max_retries); run
        this once to make a change, then start every worker with the settings
  -h, -help, --help
        print this help and exit

Environment: every key of the file has a variable, SALVO_ followed by the key
upper-cased with '.' replaced by '_' (streams.ack_wait -> SALVO_STREAMS_ACK_WAIT).
Empty variables count as unset. Values: strings as written; numbers and
true/false; durations as 500ms, 30s, 5m, 2h; lists comma-separated (a,b) or
as a YAML/JSON list ([499, 503]; [] is an empty list); maps as one YAML/JSON
mapping, e.g.
  SALVO_CONCURRENCY_MODELS='{gpt-4o: 128}'
  SALVO_UPSTREAM_ROUTES='{"m": {"base_url": "http://vllm:8000", "api_key_env": "VLLM_KEY"}}'
  SALVO_ESCALATIONS='{"big-model": {"model": "fast-model", "threshold": "10m", "mode": "race"}}'
A map or list set this way replaces the file's whole value. Still read for
older deployments: SALVO_CONCURRENCY (concurrency.default), SALVO_UPSTREAM_URL
(upstream.default.base_url), SALVO_UPSTREAM_KEY_ENV (upstream.default.api_key_env).

API keys are never settings: a route's api_key_env names the variable that
holds its key, read at start and at reload (SIGHUP).

Credentials and TLS: nats.* authenticates to NATS (one of creds, nkey,
user with password, token) and nats.tls.* secures it (a tls:// nats_url
too); redis.* does the same for Redis, for redis_url, Sentinel and Cluster
alike (a rediss:// redis_url is TLS). Give passwords and tokens by their
variable (SALVO_NATS_PASSWORD, SALVO_REDIS_PASSWORD, ...) or as a file
(the *_file keys), not in the config file; no error or log line shows them.
A refused connection names what the server refused and the keys to check.

Telemetry: http_addr serves /healthz, /readyz and /metrics (Prometheus text).
Tracing is off unless the standard OpenTelemetry variables ask for it:
  OTEL_TRACES_EXPORTER=otlp                 export spans (default none: no span is made)
  OTEL_EXPORTER_OTLP_PROTOCOL=grpc          or http/protobuf (the default)
  OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_HEADERS, OTEL_TRACES_SAMPLER,
  OTEL_TRACES_SAMPLER_ARG (e.g. parentbased_traceidratio and 0.01), OTEL_SDK_DISABLED

Keys and their variables:
`)
	width := 0
	for _, k := range Keys() {
		width = max(width, len(k))
	}
	for _, k := range Keys() {
		fmt.Fprintf(&b, "  %-*s  %s\n", width, k, EnvName(k))
	}
	b.WriteString(`
Signals: SIGTERM or SIGINT stop gracefully (shutdown_grace); SIGHUP reloads
upstream routes and timeouts, the retry policy, concurrency limits and
escalations; a
retry budget that changes max_deliver updates the model consumers on the
server.
`)
	_, _ = io.WriteString(w, b.String())
}
