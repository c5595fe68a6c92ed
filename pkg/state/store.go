package state

import (
	"context"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/salvo-run/salvo/pkg/lifecycle"
)

// Store is salvo's Redis store. It is safe for concurrent use; it holds no
// state of its own beyond the client and the config.
type Store struct {
	client redis.UniversalClient
	cfg    Config
	keys   keys
	log    zerolog.Logger
	group  *grouper
	// soft shares pipelines among the calls whose writes may be lost in
	// a failover at no cost to the guarantees (rate-limit budgets): it
	// sends no WAIT. It is group when waiting is off.
	soft *grouper
	wait replicaWait
}

// New returns a Store over client (a single node, Sentinel or Cluster
// client). cfg is completed with WithDefaults and validated.
func New(client redis.UniversalClient, cfg Config) (*Store, error) {
	if client == nil {
		return nil, fmt.Errorf("%w: client must not be nil", ErrInvalidConfig)
	}
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if _, ok := client.(*redis.ClusterClient); ok && cfg.WaitReplicas > 0 {
		// WAIT has no key: a Cluster client would send it to any node,
		// not to the one that took the pipeline's writes.
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig,
			lifecycle.ConfigErrorf("wait_replicas", "%d is not supported with Redis Cluster (WAIT covers one node's writes)", cfg.WaitReplicas))
	}
	wait := replicaWait{replicas: cfg.WaitReplicas, timeout: cfg.WaitTimeout}
	group := newGrouper(client, wait)
	soft := group
	if wait.on() {
		soft = newGrouper(client, replicaWait{})
	}
	return &Store{
		client: client,
		cfg:    cfg,
		keys:   keys{prefix: cfg.Prefix},
		log:    cfg.Logger.With().Str("component", "state").Logger(),
		group:  group,
		soft:   soft,
		wait:   wait,
	}, nil
}

// Config returns the store's effective config.
func (s *Store) Config() Config { return s.cfg }

func (s *Store) nowMS() int64 { return s.cfg.Clock().UnixMilli() }

func (s *Store) retentionMS() int64 { return s.cfg.Retention.Milliseconds() }

// run evaluates one script (EVALSHA, loading it once more after a Redis
// restart) and returns its array reply. Concurrent calls share pipelines
// (group.go).
func (s *Store) run(ctx context.Context, sc *redis.Script, keys []string, args ...any) (reply, error) {
	return s.runIn(ctx, s.group, sc, keys, args)
}

// runSoft is run for writes a failover may lose without harm (budgets: at
// worst a little over-spending): it never waits for replicas.
func (s *Store) runSoft(ctx context.Context, sc *redis.Script, keys []string, args ...any) (reply, error) {
	return s.runIn(ctx, s.soft, sc, keys, args)
}

func (s *Store) runIn(ctx context.Context, g *grouper, sc *redis.Script, keys []string, args []any) (reply, error) {
	v, err := g.run(ctx, sc, keys, args)
	if err != nil {
		return nil, interpret(err)
	}
	return asReply(v)
}

// Outcome is what a terminal move stores. Defined in pkg/lifecycle so the
// engine needs no Redis client.
type Outcome = lifecycle.Outcome

// outcomeStatus is the outcome's HTTP status, falling back to the failure's.
func outcomeStatus(o Outcome) int {
	if o.Status == 0 && o.Failure != nil {
		return o.Failure.Status
	}
	return o.Status
}

// failureArgs is the outcome's failure code and message ("" for none).
func failureArgs(o Outcome) (code, msg string) {
	if o.Failure == nil {
		return "", ""
	}
	return string(o.Failure.Code), o.Failure.Message
}

// ErrInvalidOutcome: a terminal move was asked without the failure it needs.
var ErrInvalidOutcome = errors.New("state: outcome needs a failure")

// Transition reports what a move did. Defined in pkg/lifecycle so the
// engine needs no Redis client.
type Transition = lifecycle.Transition

// transitionOf decodes {'ok', state, previous, applied, batch...} or maps
// the failure codes 'lost', 'illegal' and 'not_found' to errors.
func (s *Store) transitionOf(op string, ref lifecycle.Ref, rep reply) (Transition, error) {
	switch rep.code() {
	case "ok":
		t := Transition{
			State:    lifecycle.State(rep.str(1)),
			Previous: lifecycle.State(rep.str(2)),
			Applied:  rep.int(3) == 1,
		}
		at := 4
		if rep.str(at) == "partner" {
			t.Superseded = rep.str(at + 1)
			at += 2
		}
		if b := rep.hash(at); b != nil {
			batch := decodeBatch(b)
			t.Finalized = &batch
			s.log.Debug().Str("batch_id", batch.ID).Str("status", string(batch.Status)).Msg("batch finalized")
		}
		return t, nil
	case "lost":
		return Transition{}, fmt.Errorf("state: %s %s (record %q): %w", op, ref.ID, rep.str(1), ErrLeaseLost)
	case "illegal":
		return Transition{}, fmt.Errorf("state: %s %s from %s: %w", op, ref.ID, rep.str(1), ErrIllegalTransition)
	case "not_found":
		return Transition{}, fmt.Errorf("state: %s %s: %w", op, ref.ID, ErrNotFound)
	}
	return Transition{}, fmt.Errorf("state: %s %s: unexpected script reply %q", op, ref.ID, rep.code())
}
