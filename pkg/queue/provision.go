package queue

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
)

// advisoryConsumer is the durable consumer, shared by all workers, of the
// ADVISORIES stream.
const advisoryConsumer = "max-deliveries"

// Provision creates what salvo needs on the server and is missing:
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
//   - <P>_DISCOVERY: key-value bucket of model announcements and the
//     discovery leader's lease (discovery.go); its TTL is fixed by the
//     worker that creates it and is not compared;
//   - the durable consumer of <P>_ADVISORIES.
//
// Per-model request consumers are created by Consume when it discovers the
// model. Provision is idempotent and changes nothing that exists: streams,
// object store and consumers are shared by every worker, and one worker's
// settings must not silently rewrite them (a short results_max_age would
// purge everyone's results). When an existing stream, the object store, the
// advisory consumer or a model consumer has settings other than this
// worker's, it returns a *DiffError (errors.Is ErrSettingsDiffer) listing
// each field with both values; ApplySettings is the deliberate change. A
// setting the server cannot change in place (retention, storage) is an
// *IncompatibleError (errors.Is ErrIncompatible).
func (c *Client) Provision(ctx context.Context) error {
	ds, err := c.provision(ctx, false)
	if err != nil {
		return err
	}
	if len(ds) > 0 {
		return &DiffError{Diffs: ds}
	}
	c.log.Info().Str("requests", c.names.requests).Str("results", c.names.results).Msg("jetstream provisioned")
	return nil
}

// ApplySettings provisions like Provision, then changes every existing
// stream, the object store, the advisory consumer and every model consumer
// whose settings differ from this worker's to this worker's, and returns
// what it changed. Other workers keep running with their own Config: apply
// the same settings to them.
func (c *Client) ApplySettings(ctx context.Context) ([]Diff, error) {
	return c.provision(ctx, true)
}

// provision creates what is missing and returns the differing settings of
// what exists, after changing them when apply is set.
func (c *Client) provision(ctx context.Context, apply bool) ([]Diff, error) {
	version := c.nc.ConnectedServerVersion()
	if !serverAtLeast(version, minServer) {
		return nil, fmt.Errorf("%w: connected to %q, salvo needs nats-server >= %d.%d.%d with JetStream",
			ErrServerTooOld, version, minServer[0], minServer[1], minServer[2])
	}
	if _, err := c.js.AccountInfo(ctx); err != nil {
		return nil, fmt.Errorf("queue: provision: jetstream not available on the account: %w", err)
	}
	var all []Diff
	for _, spec := range c.streamSpecs() {
		ds, err := c.ensureStream(ctx, spec, apply)
		if err != nil {
			return nil, err
		}
		all = append(all, ds...)
	}
	ds, err := c.ensureBodies(ctx, apply)
	if err != nil {
		return nil, err
	}
	all = append(all, ds...)
	if _, err := c.ensureDiscovery(ctx); err != nil {
		return nil, fmt.Errorf("queue: provision: %w", err)
	}
	ds, err = c.ensureConsumer(ctx, c.names.advisories, c.advisoryConsumerConfig(), advisoryConsumerSettings, apply)
	if err != nil {
		return nil, err
	}
	all = append(all, ds...)
	ds, err = c.checkModelConsumers(ctx, modelConsumerSettings, apply)
	if err != nil {
		return nil, err
	}
	return append(all, ds...), nil
}

// streamSpec is a stream's config and the Config keys of its max age and
// of its limits (limitsKey + "_max_msgs", "_max_bytes").
type streamSpec struct {
	jetstream.StreamConfig
	maxAgeKey, limitsKey string
}

func (c *Client) streamSpecs() []streamSpec {
	return []streamSpec{
		{jetstream.StreamConfig{
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
		}, "requests_max_age", "requests"},
		{jetstream.StreamConfig{
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
		}, "results_max_age", "results"},
		{jetstream.StreamConfig{
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
		}, "requests_max_age", "advisories"},
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

// ensureStream creates the stream when it is missing. Otherwise it returns
// the settings that differ (a missing subject included), after updating
// them when apply is set.
func (c *Client) ensureStream(ctx context.Context, spec streamSpec, apply bool) ([]Diff, error) {
	want := spec.StreamConfig
	s, err := c.js.Stream(ctx, want.Name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		_, err = c.js.CreateStream(ctx, want)
		if err == nil {
			c.log.Info().Str("stream", want.Name).Msg("stream created")
			return nil, nil
		}
		if !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			return nil, fmt.Errorf("queue: provision: create stream %s (subjects %v): %w", want.Name, want.Subjects, err)
		}
		s, err = c.js.Stream(ctx, want.Name) // lost a creation race with another worker
	}
	if err != nil {
		return nil, fmt.Errorf("queue: provision: stream %s: %w", want.Name, err)
	}
	have := s.CachedInfo().Config
	if have.Retention != want.Retention {
		return nil, &IncompatibleError{Stream: want.Name, Field: "retention", Have: have.Retention.String(), Want: want.Retention.String()}
	}
	if have.Storage != want.Storage {
		return nil, &IncompatibleError{Stream: want.Name, Field: "storage", Have: have.Storage.String(), Want: want.Storage.String()}
	}
	fields := streamSettings(spec.maxAgeKey, spec.limitsKey)
	ds := diffs(streamObject(want.Name), fields, have, want)
	upd := applied(fields, have, want)
	for _, subj := range want.Subjects {
		if !slices.Contains(upd.Subjects, subj) {
			upd.Subjects = append(slices.Clone(upd.Subjects), subj)
		}
	}
	if !slices.Equal(have.Subjects, upd.Subjects) {
		ds = append(ds, Diff{Object: streamObject(want.Name), Field: "subjects",
			Server: strings.Join(have.Subjects, ","), Worker: strings.Join(upd.Subjects, ",")})
	}
	if len(ds) == 0 || !apply {
		return ds, nil
	}
	if _, err := c.js.UpdateStream(ctx, upd); err != nil {
		return nil, fmt.Errorf("queue: provision: update stream %s: %w", want.Name, err)
	}
	c.logApplied(ds)
	return ds, nil
}

// ensureBodies creates the bodies object store when it is missing;
// otherwise as ensureStream.
func (c *Client) ensureBodies(ctx context.Context, apply bool) ([]Diff, error) {
	want := jetstream.ObjectStoreConfig{
		Bucket:      c.names.bodies,
		Description: "salvo result bodies larger than the max payload",
		TTL:         c.cfg.ResultsMaxAge,
		MaxBytes:    c.cfg.BodiesMaxBytes,
		Storage:     c.cfg.Storage.jetstream(),
		Replicas:    c.cfg.Replicas,
	}
	os, err := c.js.ObjectStore(ctx, want.Bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		_, err = c.js.CreateObjectStore(ctx, want)
		if err == nil || !errors.Is(err, jetstream.ErrBucketExists) {
			return nil, wrapBodiesErr(want.Bucket, err)
		}
		os, err = c.js.ObjectStore(ctx, want.Bucket) // lost a creation race with another worker
	}
	if err != nil {
		return nil, wrapBodiesErr(want.Bucket, err)
	}
	st, err := os.Status(ctx)
	if err != nil {
		return nil, wrapBodiesErr(want.Bucket, err)
	}
	have := want
	have.TTL, have.Replicas = st.TTL(), st.Replicas()
	ds := diffs("object store "+want.Bucket, bodiesSettings, have, want)
	if len(ds) == 0 || !apply {
		return ds, nil
	}
	if _, err := c.js.UpdateObjectStore(ctx, want); err != nil {
		return nil, wrapBodiesErr(want.Bucket, err)
	}
	c.logApplied(ds)
	return ds, nil
}

func wrapBodiesErr(bucket string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("queue: provision: object store %s: %w", bucket, err)
}

// ensureConsumer creates the durable consumer want on stream when it is
// missing. Otherwise it returns the fields that differ, after updating
// them when apply is set.
func (c *Client) ensureConsumer(ctx context.Context, stream string, want jetstream.ConsumerConfig,
	fields []consumerSetting, apply bool,
) ([]Diff, error) {
	cons, err := c.js.Consumer(ctx, stream, want.Durable)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		cons, err = c.js.CreateConsumer(ctx, stream, want)
		if errors.Is(err, jetstream.ErrConsumerExists) {
			cons, err = c.js.Consumer(ctx, stream, want.Durable) // created meanwhile, with other settings
		}
	}
	if err != nil {
		return nil, fmt.Errorf("queue: provision: consumer %s on %s: %w", want.Durable, stream, err)
	}
	return c.syncConsumer(ctx, stream, cons.CachedInfo().Config, want, fields, apply)
}

// syncConsumer returns the fields of have that differ from want, after
// updating them when apply is set.
func (c *Client) syncConsumer(ctx context.Context, stream string, have, want jetstream.ConsumerConfig,
	fields []consumerSetting, apply bool,
) ([]Diff, error) {
	ds := diffs(consumerObject(stream, have.Durable), fields, have, want)
	if len(ds) == 0 || !apply {
		return ds, nil
	}
	if _, err := c.js.UpdateConsumer(ctx, stream, applied(fields, have, want)); err != nil {
		if errors.Is(err, jetstream.ErrConsumerDoesNotExist) || errors.Is(err, jetstream.ErrConsumerNotFound) {
			return nil, nil // removed meanwhile (inactive): the next one is created with want
		}
		return nil, fmt.Errorf("queue: update consumer %s on %s: %w", have.Durable, stream, err)
	}
	c.logApplied(ds)
	return ds, nil
}

// checkModelConsumers compares fields of every model consumer on the
// REQUESTS stream with this worker's, updating them when apply is set.
func (c *Client) checkModelConsumers(ctx context.Context, fields []consumerSetting, apply bool) ([]Diff, error) {
	s, err := c.js.Stream(ctx, c.names.requests)
	if err != nil {
		return nil, fmt.Errorf("queue: stream %s: %w", c.names.requests, err)
	}
	want := c.modelConsumerConfig("", "")
	var all []Diff
	l := s.ListConsumers(ctx)
	for info := range l.Info() {
		if !strings.HasPrefix(info.Name, modelConsumerPrefix) {
			continue
		}
		ds, err := c.syncConsumer(ctx, c.names.requests, info.Config, want, fields, apply)
		if err != nil {
			return nil, err
		}
		all = append(all, ds...)
	}
	if err := l.Err(); err != nil {
		return nil, fmt.Errorf("queue: list consumers of %s: %w", c.names.requests, err)
	}
	return all, nil
}

// SetMaxDeliver makes n the MaxDeliver of the model consumers: of those
// this worker creates from now on, and of every existing one, which it
// updates. A reload that changes the retry budget calls it; it is a
// deliberate change of a setting all workers share.
func (c *Client) SetMaxDeliver(ctx context.Context, n int) error {
	cfg := c.Config()
	cfg.MaxDeliver = n
	if err := cfg.Validate(); err != nil {
		return err
	}
	c.maxDeliver.Store(int64(n))
	if _, err := c.checkModelConsumers(ctx, []consumerSetting{maxDeliverSetting}, true); err != nil {
		return fmt.Errorf("queue: set max_deliver %d: %w", n, err)
	}
	return nil
}

func (c *Client) logApplied(ds []Diff) {
	for _, d := range ds {
		c.log.Warn().Str("object", d.Object).Str("field", d.Field).Str("from", d.Server).Str("to", d.Worker).
			Msg("server setting changed to this worker's")
	}
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
