package queue

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/nats-io/nats.go/jetstream"
)

// advisoryConsumer is the durable consumer, shared by all workers, of the
// ADVISORIES stream.
const advisoryConsumer = "max-deliveries"

// Provision creates or updates everything salvo needs on the server:
//
//   - <P>_REQUESTS: work-queue retention, subjects <p>.req.>, discard new
//     (a full stream rejects publishes instead of dropping queued work);
//   - <P>_RESULTS: limits retention, subjects <p>.res.> and <p>.evt.> (batch
//     lifecycle events live here too, so one replay sees both);
//   - <P>_ADVISORIES: work-queue stream capturing the max-deliveries
//     advisories of <P>_REQUESTS, so a poison message is handled even if no
//     worker was connected when the advisory fired;
//   - <P>_BODIES: object store for result bodies over the max payload, with
//     the results' max age as TTL;
//   - the durable consumer of <P>_ADVISORIES.
//
// Per-model request consumers are created by Consume when it discovers the
// model. Provision is idempotent. On an existing stream it updates what the
// server can update (subjects are merged, max age, duplicate window,
// replicas, discard policy) and returns an *IncompatibleError (errors.Is
// ErrIncompatible) naming the field it cannot change (retention, storage).
func (c *Client) Provision(ctx context.Context) error {
	version := c.nc.ConnectedServerVersion()
	if !serverAtLeast(version, minServer) {
		return fmt.Errorf("%w: connected to %q, salvo needs nats-server >= %d.%d.%d with JetStream",
			ErrServerTooOld, version, minServer[0], minServer[1], minServer[2])
	}
	if _, err := c.js.AccountInfo(ctx); err != nil {
		return fmt.Errorf("queue: provision: jetstream not available on the account: %w", err)
	}
	for _, want := range c.streamConfigs() {
		if err := c.ensureStream(ctx, want); err != nil {
			return err
		}
	}
	if err := c.ensureBodies(ctx); err != nil {
		return err
	}
	if _, err := c.js.CreateOrUpdateConsumer(ctx, c.names.advisories, c.advisoryConsumerConfig()); err != nil {
		return fmt.Errorf("queue: provision: consumer %s on %s: %w", advisoryConsumer, c.names.advisories, err)
	}
	c.log.Info().Str("server_version", version).Str("requests", c.names.requests).
		Str("results", c.names.results).Msg("jetstream provisioned")
	return nil
}

func (c *Client) streamConfigs() []jetstream.StreamConfig {
	return []jetstream.StreamConfig{
		{
			Name:        c.names.requests,
			Description: "salvo requests, one message per request (work queue)",
			Subjects:    []string{c.subj.allRequests()},
			Retention:   jetstream.WorkQueuePolicy,
			Discard:     jetstream.DiscardNew,
			Storage:     c.cfg.Storage.jetstream(),
			Replicas:    c.cfg.Replicas,
			MaxAge:      c.cfg.RequestsMaxAge,
			MaxMsgs:     c.cfg.RequestsMaxMsgs,
			MaxBytes:    c.cfg.RequestsMaxBytes,
			Duplicates:  c.cfg.DuplicateWindow,
		},
		{
			Name:        c.names.results,
			Description: "salvo results (<p>.res.<batch>) and batch lifecycle events (<p>.evt.batch.<batch>)",
			Subjects:    []string{c.subj.allResults(), c.subj.allEvents()},
			Retention:   jetstream.LimitsPolicy,
			Discard:     jetstream.DiscardOld,
			Storage:     c.cfg.Storage.jetstream(),
			Replicas:    c.cfg.Replicas,
			MaxAge:      c.cfg.ResultsMaxAge,
			MaxMsgs:     c.cfg.ResultsMaxMsgs,
			MaxBytes:    c.cfg.ResultsMaxBytes,
			Duplicates:  c.cfg.DuplicateWindow,
		},
		{
			Name:        c.names.advisories,
			Description: "max-deliveries advisories of " + c.names.requests,
			Subjects:    []string{c.subj.maxDeliveriesAdvisories()},
			Retention:   jetstream.WorkQueuePolicy,
			Discard:     jetstream.DiscardOld,
			Storage:     c.cfg.Storage.jetstream(),
			Replicas:    c.cfg.Replicas,
			MaxAge:      c.cfg.RequestsMaxAge,
			MaxMsgs:     c.cfg.AdvisoriesMaxMsgs,
			MaxBytes:    c.cfg.AdvisoriesMaxBytes,
			Duplicates:  c.cfg.DuplicateWindow,
		},
	}
}

func (c *Client) advisoryConsumerConfig() jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:       advisoryConsumer,
		Description:   "salvo: fail and remove requests past MaxDeliver",
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       c.cfg.AckWait,
		MaxDeliver:    -1, // a handler error naks with a growing delay; never drop an advisory
		MaxAckPending: 1000,
	}
}

func (c *Client) ensureStream(ctx context.Context, want jetstream.StreamConfig) error {
	s, err := c.js.Stream(ctx, want.Name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		_, err = c.js.CreateStream(ctx, want)
		if err == nil {
			c.log.Info().Str("stream", want.Name).Msg("stream created")
			return nil
		}
		if !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			return fmt.Errorf("queue: provision: create stream %s (subjects %v): %w", want.Name, want.Subjects, err)
		}
		s, err = c.js.Stream(ctx, want.Name) // lost a creation race with another worker
	}
	if err != nil {
		return fmt.Errorf("queue: provision: stream %s: %w", want.Name, err)
	}
	have := s.CachedInfo().Config
	if have.Retention != want.Retention {
		return &IncompatibleError{Stream: want.Name, Field: "retention", Have: have.Retention.String(), Want: want.Retention.String()}
	}
	if have.Storage != want.Storage {
		return &IncompatibleError{Stream: want.Name, Field: "storage", Have: have.Storage.String(), Want: want.Storage.String()}
	}
	upd := have
	for _, subj := range want.Subjects {
		if !slices.Contains(upd.Subjects, subj) {
			upd.Subjects = append(slices.Clone(upd.Subjects), subj)
		}
	}
	upd.MaxAge = want.MaxAge
	upd.Duplicates = want.Duplicates
	upd.Replicas = want.Replicas
	upd.Discard = want.Discard
	if sameStreamConfig(have, upd) {
		return nil
	}
	if _, err := c.js.UpdateStream(ctx, upd); err != nil {
		return fmt.Errorf("queue: provision: update stream %s (subjects %v, max_age %s, duplicates %s, replicas %d): %w",
			want.Name, upd.Subjects, upd.MaxAge, upd.Duplicates, upd.Replicas, err)
	}
	c.log.Info().Str("stream", want.Name).Msg("stream updated")
	return nil
}

func sameStreamConfig(a, b jetstream.StreamConfig) bool {
	return slices.Equal(a.Subjects, b.Subjects) && a.MaxAge == b.MaxAge && a.Duplicates == b.Duplicates &&
		a.Replicas == b.Replicas && a.Discard == b.Discard
}

func (c *Client) ensureBodies(ctx context.Context) error {
	cfg := jetstream.ObjectStoreConfig{
		Bucket:      c.names.bodies,
		Description: "salvo result bodies larger than the max payload",
		TTL:         c.cfg.ResultsMaxAge,
		MaxBytes:    c.cfg.BodiesMaxBytes,
		Storage:     c.cfg.Storage.jetstream(),
		Replicas:    c.cfg.Replicas,
	}
	_, err := c.js.ObjectStore(ctx, cfg.Bucket)
	switch {
	case errors.Is(err, jetstream.ErrBucketNotFound):
		_, err = c.js.CreateObjectStore(ctx, cfg)
	case err == nil:
		_, err = c.js.UpdateObjectStore(ctx, cfg)
	}
	if err != nil {
		return fmt.Errorf("queue: provision: object store %s: %w", cfg.Bucket, err)
	}
	return nil
}

// bodiesStore opens the object store, caching nothing: ObjectStore is one
// cheap stream info call and large bodies are rare.
func (c *Client) bodiesStore(ctx context.Context) (jetstream.ObjectStore, error) {
	os, err := c.js.ObjectStore(ctx, c.names.bodies)
	if err != nil {
		return nil, fmt.Errorf("queue: object store %s: %w", c.names.bodies, err)
	}
	return os, nil
}
