# salvo — build, test, lint, demo, bench.
GO            ?= go
GOBIN         := $(shell $(GO) env GOPATH)/bin
GOLANGCI      := $(GOBIN)/golangci-lint
GOLANGCI_VER  := v2.15.0
TEST_TIMEOUT  ?= 20m
# Two cores: run two test binaries at a time.
TEST_P        ?= 2
# The version --version prints: `git describe`, else "devel".
VERSION       ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
LDFLAGS       := -X github.com/salvo-run/salvo/internal/version.Version=$(VERSION)
IMAGE         ?= salvo:$(VERSION)

.DEFAULT_GOAL := help

.PHONY: help
help: ## List the targets.
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

.PHONY: build
build: ## Build every package and the binaries into ./bin.
	$(GO) build ./...
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/ ./cmd/...

.PHONY: docker
docker: ## Build the container image salvo:<git describe> (override with IMAGE=; needs a Docker daemon).
	docker build --build-arg VERSION=$(VERSION) -t $(IMAGE) .

# Offline checks of what deployments/ ships, no daemon or cluster needed
# (go test ./deployments/ does the work): the image's binaries built as
# the Dockerfile builds them (deployments/build-static.sh: static,
# CGO_ENABLED=0) and checked static, with the version baked in; docker-compose.yml and its cluster override
# loaded by compose-go (and by `docker compose config` when the plugin is
# installed); the kustomize base and overlays rendered and validated
# against the vendored Kubernetes and KEDA schemas (deployments/schemas).
.PHONY: check-deploy
check-deploy: ## Offline checks of the Dockerfile build, docker-compose.yml and the Kubernetes manifests.
	@if docker compose version >/dev/null 2>&1; then \
	  echo "docker compose config -q"; \
	  docker compose -f docker-compose.yml config -q && \
	  docker compose -f docker-compose.yml -f docker-compose.cluster.yml config -q; \
	else echo "check-deploy: no docker compose plugin; compose-go's loader checks the files below"; fi
	$(GO) test -count=1 ./deployments/

.PHONY: schemas
schemas: ## Regenerate deployments/schemas from the Kubernetes and KEDA sources (Go module proxy).
	$(GO) run ./deployments/schemas/gen deployments/schemas

.PHONY: test
test: ## Run the whole test suite with the race detector (real Redis and embedded NATS).
	$(GO) test -race -count=1 -p $(TEST_P) -timeout $(TEST_TIMEOUT) ./...

.PHONY: test-short
test-short: ## Run the suite without the slow end-to-end and crash tests.
	$(GO) test -short -count=1 -p $(TEST_P) ./...

.PHONY: lint
lint: $(GOLANGCI) ## go vet plus golangci-lint (installed through the Go toolchain).
	$(GO) vet ./...
	$(GOLANGCI) run ./...

$(GOLANGCI):
	$(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_VER)

.PHONY: fuzz
fuzz: ## Fuzz the subject-token encoding for 30 s.
	$(GO) test ./pkg/lifecycle -run '^$$' -fuzz FuzzTokenRoundTrip -fuzztime 30s

# Every part its own process (bench/loadbench, docs/BENCHMARKS.md): each
# round starts fresh nats-server (built from go.mod), redis-server (no
# persistence) and cmd/mockupstream processes on loopback ports, queues the
# requests ahead, starts the system under test (cmd/worker, bench/pipeline
# or bench/asynqbase) and measures its first to last finished request:
# req/s, CPU-µs per request of every process (/proc/<pid>/stat) and the
# peak RSS of the system under test. Systems run in interleaved rounds,
# so salvo/pipeline and salvo/asynq ratios come from the same run. Every
# child process is killed at the end, also on failure or timeout.
#
# Scenarios (LOAD_SCENARIOS, comma-separated):
#   throughput  upstream without latency, concurrency LOAD_HANDLERS (64,256),
#               LOAD_N requests per round: salvo vs pipeline vs asynq
#   inflight    LOAD_INFLIGHT_N requests, upstream latency 5s, 10,000 calls in
#               flight: sustained req/s and peak RSS, salvo vs pipeline
#               (HTTP/1.1), and salvo with h2c (HTTP/2 without TLS)
#   latency     100 req/s for 10 s: publish -> upstream receipt p50/p99
#   coldmodel   50 requests one at a time, each for an unseen model:
#               publish -> upstream receipt p50/p99; salvo with the model
#               announced (as its publishers do) and raw (the leader's listing)
#   retry       salvo with 20 % of calls answering 429 (Retry-After 200ms) vs none
#   multi       3 worker processes vs 1, upstream latency 20 ms, 64 each
# `make bench` runs throughput, inflight, latency and coldmodel at the
# defaults below: about 12-15 minutes on 2 shared cores. `make bench-load
# LOAD_SCENARIOS=retry,multi` runs the others; LOAD_FLAGS passes any
# other flag (bin/loadbench -help). Output: bin/loadbench.txt (what is
# printed), bin/loadbench.json (every round's raw figures), bin/loadbench.log
# (the child processes' output).
LOAD_SCENARIOS ?= throughput,inflight,latency,coldmodel
LOAD_N         ?= 50000
LOAD_HANDLERS  ?= 64,256
LOAD_INFLIGHT_N ?= 50000
LOAD_ROUNDS    ?= 3
LOAD_FLAGS     ?=

.PHONY: bench
bench: bench-load ## Every part its own process: salvo vs a minimal pipeline vs asynq (bench/loadbench); see bench-micro too.

.PHONY: bench-build
bench-build: ## Build nats-server, the worker, the mock upstream, the baselines and loadbench into ./bin.
	$(GO) build -o bin/ ./cmd/worker ./cmd/mockupstream ./bench/pipeline ./bench/asynqbase ./bench/loadbench
	$(GO) build -o bin/nats-server github.com/nats-io/nats-server/v2

.PHONY: bench-load
bench-load: bench-build ## Run bench/loadbench's LOAD_SCENARIOS (every part its own process).
	bin/loadbench -bin bin -scenarios $(LOAD_SCENARIOS) -n $(LOAD_N) -handlers $(LOAD_HANDLERS) \
	  -inflight-n $(LOAD_INFLIGHT_N) -rounds $(LOAD_ROUNDS) $(LOAD_FLAGS)

# In-process micro-benchmarks (bench-micro): one op is one request. pkg/worker's end-to-end benchmark and
# its baselines (bare HTTP, JetStream only, Redis only) run BENCH_N requests
# each, setup outside the timer, in BENCH_COUNT interleaved rounds so that a
# load change on the shared machine hits pipeline and baselines alike; each
# round prints its pipeline/baseline req/s ratios. The submit-to-result
# latency benchmark (one request in flight) and the other packages'
# benchmarks (BENCH_TIME each) run after. About 2.5 minutes on 2 cores at
# the defaults. These share one process; `make bench` measures every part
# in its own process. The raw output is also written to BENCH_OUT; summarise with
#   go run golang.org/x/perf/cmd/benchstat@latest bin/bench.txt
BENCH_N       ?= 10000
BENCH_COUNT   ?= 6
# Submit-to-result latency: requests per run, one at a time.
BENCH_LAT_N   ?= 1000
# Per-benchmark time of the other packages (pkg/state, pkg/queue, pkg/httpclient, ...).
BENCH_TIME    ?= 300ms
BENCH_OUT     ?= bin/bench.txt
override BENCH_OUT := $(abspath $(BENCH_OUT))
BENCH_BIN      = $(abspath bin/worker.bench.test)
BENCH_PKGS     = $(shell $(GO) list ./pkg/... | grep -v '/pkg/worker$$')
# Per round: req/s of Pipeline/handlers=H over each baseline at the same H.
BENCH_RATIOS   = awk '/^Benchmark/ { for (i = 2; i < NF; i++) if ($$(i+1) == "req/s") v[$$1] = $$i } \
  /^PASS/ { r++; split("HTTP JetStream/ack JetStream/result+ack Redis", base, " "); \
    for (k in v) if (sub(/^BenchmarkPipeline\//, "", k) && (p = v["BenchmarkPipeline/" k]) > 0) { \
      line = sprintf("round %d %s pipeline %.0f req/s, ratio to", r, k, p); \
      for (j = 1; j <= 4; j++) { b = v["BenchmarkBaseline" base[j] "/" k]; \
        if (b > 0) line = line sprintf(" %s %.3f", base[j], p / b) } print line } delete v }'

.PHONY: bench-micro
bench-micro: ## In-process Go benchmarks: pkg/worker pipeline vs its parts, latency, package micro-benchmarks.
	@mkdir -p $(dir $(BENCH_OUT)) && : > $(BENCH_OUT)
	$(GO) test -c -o bin/worker.bench.test ./pkg/worker/
	@for i in $$(seq $(BENCH_COUNT)); do \
	  (cd pkg/worker && $(BENCH_BIN) -test.run '^$$' -test.bench '^Benchmark(Pipeline|Baseline)' \
	    -test.benchmem -test.benchtime $(BENCH_N)x -test.timeout 5m) >> $(BENCH_OUT) || { cat $(BENCH_OUT); exit 1; }; \
	done; cat $(BENCH_OUT); $(BENCH_RATIOS) $(BENCH_OUT)
	cd pkg/worker && $(BENCH_BIN) -test.run '^$$' -test.bench '^BenchmarkLatency$$' -test.benchtime $(BENCH_LAT_N)x \
	  -test.count $(BENCH_COUNT) -test.timeout 3m > $(BENCH_OUT).tmp; \
	  rc=$$?; cat $(BENCH_OUT).tmp; cat $(BENCH_OUT).tmp >> $(BENCH_OUT); rm -f $(BENCH_OUT).tmp; [ $$rc -eq 0 ]
	$(GO) test -run '^$$' -bench . -benchmem -count $(BENCH_COUNT) -benchtime $(BENCH_TIME) -timeout 3m $(BENCH_PKGS) > $(BENCH_OUT).tmp; \
	  rc=$$?; cat $(BENCH_OUT).tmp; cat $(BENCH_OUT).tmp >> $(BENCH_OUT); rm -f $(BENCH_OUT).tmp; [ $$rc -eq 0 ]

# Crash recovery and heartbeat cost at the default ack_wait, lease.ttl and
# heartbeat: real cmd/worker processes, one scenario per op (see
# docs/BENCHMARKS.md). About 1 min per recovery round, 1.5 min for the cost.
BENCH_RECOVERY_ROUNDS ?= 3

.PHONY: bench-recovery
bench-recovery: ## SIGKILL a worker and measure p50/p99/max until its requests run again; heartbeat cost at 10,000 in flight.
	cd pkg/worker && $(GO) test -run '^$$' -bench '^BenchmarkRecovery$$' -benchtime $(BENCH_RECOVERY_ROUNDS)x -timeout 10m .
	cd pkg/worker && $(GO) test -run '^$$' -bench '^BenchmarkHeartbeatCost$$' -benchtime 1x -timeout 5m .

# Telemetry cost: BenchmarkPipeline (64 handlers) and BenchmarkTelemetry
# (metrics into a Prometheus exporter with tracing off, a no-op tracer
# provider, 1 % sampling) in the same test binary, interleaved rounds
# (docs/BENCHMARKS.md). About 1 minute per round at the default.
BENCH_TELEMETRY_N      ?= 5000
BENCH_TELEMETRY_ROUNDS ?= 3

.PHONY: bench-telemetry
bench-telemetry: ## Worker path with telemetry off vs a no-op tracer vs 1 % sampling, same run.
	$(GO) test -c -o bin/worker.bench.test ./pkg/worker/
	cd pkg/worker && for r in $$(seq $(BENCH_TELEMETRY_ROUNDS)); do \
	  $(BENCH_BIN) -test.run '^$$' -test.bench '^BenchmarkPipeline$$/^handlers=64$$' -test.benchmem -test.benchtime $(BENCH_TELEMETRY_N)x -test.timeout 5m; \
	  $(BENCH_BIN) -test.run '^$$' -test.bench '^BenchmarkTelemetry$$' -test.benchmem -test.benchtime $(BENCH_TELEMETRY_N)x -test.timeout 10m; \
	done

# Cancel latency: three cmd/worker processes with ~450 calls in flight; one
# op is one cancelled batch (see docs/BENCHMARKS.md). About 10 s per round.
BENCH_CANCEL_ROUNDS ?= 10

.PHONY: bench-cancel
bench-cancel: ## Cancel a running batch over the API and measure p50/p99/max until no call of it is in flight.
	cd pkg/worker && $(GO) test -run '^$$' -bench '^BenchmarkCancel$$' -benchtime $(BENCH_CANCEL_ROUNDS)x -timeout 10m .

# Escalation near the deadline: a 2,000-request batch whose 15 s window is
# too short for its slow model alone, through one cmd/worker process,
# without escalation and with modes route and race; one op is one batch on
# fresh servers (see docs/BENCHMARKS.md). About 30 s per round of the three.
BENCH_ESCALATION_ROUNDS ?= 3

.PHONY: bench-escalation
bench-escalation: ## A batch too slow for its model alone: on time with escalation (route, race), late without.
	cd pkg/worker && $(GO) test -run '^$$' -bench '^BenchmarkEscalation$$' -benchtime $(BENCH_ESCALATION_ROUNDS)x -timeout 15m .

# Producer memory: peak RSS of `producer submit` and `producer results`
# (each its own process) on a generated 100,000-line, ~200 MB input, with
# an in-process worker and mock upstream. A few minutes.
.PHONY: bench-producer
bench-producer: ## Peak RSS of producer submit and results on a 100,000-line, ~200 MB file.
	SALVO_BENCH_PRODUCER=1 $(GO) test -run '^TestProducerPeakRSS$$' -v -count=1 -timeout 30m ./internal/producer/ | grep -E 'input|producer (status|submit|results):|ok|FAIL'

# Gateway memory: peak RSS of cmd/gateway (its own process, on an embedded
# nats-server) while a 200 MB file is uploaded through POST /v1/files and
# downloaded back through GET /v1/files/{id}/content. Under a minute.
.PHONY: bench-gateway
bench-gateway: ## Peak RSS of the gateway uploading and downloading a 200 MB file.
	SALVO_BENCH_GATEWAY=1 $(GO) test -run '^TestGatewayPeakRSS$$' -v -count=1 -timeout 30m ./cmd/gateway/ | grep -E 'input|gateway (idle|upload|download|slow)|ok|FAIL'

# The reliability suite (bench/chaos, docs/RELIABILITY.md): each scenario
# starts fresh nats-server (built from go.mod), redis-server and three
# cmd/worker processes on loopback ports with the mock upstream, publishes
# its batches, injects its faults (worker SIGKILLs, Redis and NATS
# restarts, a JetStream node of three, cut and slowed connections, a
# failing upstream, bad inputs, cancel and expiry races, a Sentinel
# failover) and runs the invariant checker (internal/invariant) after it.
# `make chaos` runs every scenario at several thousand requests each
# (under 10 minutes on 2 cores); `make chaos-short` a few hundred each (CI).
# CHAOS_SCENARIOS picks some (comma-separated); output in bin/chaos.{txt,json,md,log}.
CHAOS_SCENARIOS ?=
CHAOS_FLAGS     ?=

.PHONY: chaos-build
chaos-build: ## Build nats-server, the worker and the chaos suite into ./bin.
	$(GO) build -o bin/ ./cmd/worker ./bench/chaos
	$(GO) build -o bin/nats-server github.com/nats-io/nats-server/v2

.PHONY: chaos
chaos: chaos-build ## The reliability suite: every fault scenario at full size, invariants checked after each.
	bin/chaos -bin bin -size full -timeout 10m -scenarios "$(CHAOS_SCENARIOS)" $(CHAOS_FLAGS)

.PHONY: chaos-short
chaos-short: chaos-build ## The reliability suite at a few hundred requests per scenario (CI, about three minutes).
	bin/chaos -bin bin -size short -timeout 4m -scenarios "$(CHAOS_SCENARIOS)" $(CHAOS_FLAGS)

.PHONY: demo
demo: ## The one-command demo: embedded NATS, Redis, worker, mock upstream and producer; output in out/.
	$(GO) run ./cmd/demo -input examples/batch.jsonl -output out/demo-output.jsonl -errors out/demo-errors.jsonl

.PHONY: clean
clean: ## Remove build output.
	rm -rf bin
