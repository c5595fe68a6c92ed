package config

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go"

	"github.com/salvo-run/salvo/pkg/queue"
)

// ApplyFlag is the worker flag that runs ApplyStreams instead of the worker.
const ApplyFlag = "apply-streams"

// ApplyStreams changes the streams, the bodies object store and the
// consumers on the NATS server to the settings in s, creating what is
// missing, and returns what it changed. Starting a worker never changes
// them (Start refuses settings that differ, see ErrSettingsDiffer): this is
// the deliberate change, run once per change (`worker -apply-streams`),
// after which every worker needs the same settings to start. It connects
// to NATS only.
func ApplyStreams(ctx context.Context, s Settings, o Options) ([]queue.Diff, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	if o.Name == "" {
		o.Name = "salvo-worker-apply-streams"
	}
	log := o.logger()
	nc, err := s.NATSConfig().Connect(nats.Name(o.Name))
	if err != nil {
		return nil, natsError(err)
	}
	defer nc.Close()
	q, err := queue.New(nc, s.QueueConfig(), log)
	if err != nil {
		return nil, err
	}
	changes, err := q.ApplySettings(ctx)
	if err != nil {
		return nil, fmt.Errorf("apply streams: %w", err)
	}
	return changes, nil
}

// provisionError says, in the user's words, what Provision found: for each
// setting that differs on the server, the object, the field, both values,
// the key and its variable, and the two ways out. errors.Is(err,
// queue.ErrSettingsDiffer) still holds.
func provisionError(err error) error {
	var de *queue.DiffError
	if !errors.As(err, &de) {
		return fmt.Errorf("provision streams: %w", err)
	}
	lines := make([]string, len(de.Diffs))
	for i, d := range de.Diffs {
		line := fmt.Sprintf("%s: %s is %s on the server, this worker has %s", d.Object, d.Field, d.Server, d.Worker)
		if d.Key == "" {
			lines[i] = line + "; change it with worker -" + ApplyFlag
			continue
		}
		key := "streams." + d.Key
		e := keyError(key, nil, "")
		names := e.Env
		if d.Key == "max_deliver" {
			names += "; unless set, derived from retry.max_retries and lease.max_reclaims"
		}
		lines[i] = fmt.Sprintf("%s (%s, %s); change it with worker -%s, or set %s to %s",
			line, key, names, ApplyFlag, key, d.Server)
	}
	return fmt.Errorf("the streams on the NATS server have settings other than this worker's, "+
		"and a worker does not change what all workers share when it starts:\n  %s\n%w",
		strings.Join(lines, "\n  "), queue.ErrSettingsDiffer)
}
