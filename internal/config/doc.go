// Package config is the one home of a worker process's settings and the
// one place that builds a process from them.
//
// Settings decode straight into the packages' own configs — queue.Config
// (streams.*), state.Config (lease.*), httpclient.Config (upstream.*),
// worker.Config (retry.*, concurrency.*, heartbeat_interval,
// shutdown_grace) — by their yaml tags, next to a few process keys
// (nats_url, redis_url, prefix, …) and the connections' credentials and
// TLS: nats.* (natsconn.Config) and redis.* (RedisConn), which reach the
// single-node, Sentinel and Cluster clients alike. Values the packages cannot know alone
// are derived here: streams.max_deliver from the retry budget, the
// heartbeat from min(streams.ack_wait, lease.ttl)/3.
//
// # Layers
//
// Load applies, each overriding the one before: the built-in defaults, the
// YAML file (-config, else SALVO_CONFIG), the environment, the flags.
// Every key has an environment variable: SALVO_ followed by the key
// upper-cased with '.' replaced by '_' (EnvName). Lists and maps (routes,
// per-model limits) take one YAML or JSON value in their variable.
//
// # Errors
//
// Every error names the key as the user wrote it and its variable:
//
//	upstream.connect_timeout (SALVO_UPSTREAM_CONNECT_TIMEOUT): must be positive, got -1s
//
// The packages' Validate methods return *lifecycle.ConfigError with their
// own keys; this package puts the section in front and adds the variable.
//
// # Process
//
// Start resolves everything first (validation, API key variables), so
// invalid settings fail before any stream, consumer or Redis key exists;
// then it connects NATS and Redis, provisions the streams and starts the
// worker. cmd/worker, the demo and the tests all start workers this way.
//
// The hand-written layering (rather than a layering library) keeps model
// names such as "meta-llama/Llama-3.1-8B" intact as map keys — they contain
// the key delimiter '.' — and lets every decoding error name its key.
package config

// docs/CONFIG.md, the configuration reference, is generated from Reference
// and the settings' doc comments; gendoc's test fails when it is stale.
//go:generate go run ./gendoc
