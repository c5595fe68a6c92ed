# salvo — build, test, lint, demo, bench.
GO            ?= go
GOBIN         := $(shell $(GO) env GOPATH)/bin
GOLANGCI      := $(GOBIN)/golangci-lint
GOLANGCI_VER  := v2.15.0
TEST_TIMEOUT  ?= 20m
# Two cores: run two test binaries at a time.
TEST_P        ?= 2

.DEFAULT_GOAL := help

.PHONY: help
help: ## List the targets.
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

.PHONY: build
build: ## Build every package and the binaries into ./bin.
	$(GO) build ./...
	$(GO) build -o bin/ ./cmd/...

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

.PHONY: bench
bench: ## Run the Go benchmarks (figures go to docs/BENCHMARKS.md).
	$(GO) test -run '^$$' -bench . -benchmem -count 1 ./pkg/...

.PHONY: demo
demo: ## The one-command demo: embedded NATS, Redis, worker, mock upstream and producer; output in out/.
	$(GO) run ./cmd/demo -input examples/batch.jsonl -output out/demo-output.jsonl -errors out/demo-errors.jsonl

.PHONY: clean
clean: ## Remove build output.
	rm -rf bin
