package queue

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Diff is one setting of a stream, object store or consumer whose value on
// the server differs from this worker's Config. Provision reports them
// (a *DiffError) instead of changing a setting every worker shares;
// ApplySettings changes them and returns what it changed.
type Diff struct {
	// Object names what holds the setting: "stream SALVO_RESULTS",
	// "object store SALVO_BODIES", "consumer model-m of SALVO_REQUESTS".
	Object string
	// Field is the server's name of the setting: max_age, ack_wait, …
	Field string
	// Key is the Config key (yaml tag) this worker's value comes from:
	// results_max_age, ack_wait, …; empty for a value salvo itself fixes
	// (a subject, the discard policy).
	Key string
	// Server and Worker are the values on the server and in this worker.
	Server, Worker string
}

func (d Diff) String() string {
	s := fmt.Sprintf("%s: %s is %s on the server, this worker has %s", d.Object, d.Field, d.Server, d.Worker)
	if d.Key != "" {
		s += " (" + d.Key + ")"
	}
	return s
}

// DiffError lists the settings Provision found different on the server.
// errors.Is(err, ErrSettingsDiffer) holds.
type DiffError struct {
	Diffs []Diff
}

func (e *DiffError) Error() string {
	lines := make([]string, len(e.Diffs))
	for i, d := range e.Diffs {
		lines[i] = d.String()
	}
	return "queue: the server's settings differ from this worker's (change them deliberately with ApplySettings): " +
		strings.Join(lines, "; ")
}

// Unwrap makes errors.Is(err, ErrSettingsDiffer) true.
func (e *DiffError) Unwrap() error { return ErrSettingsDiffer }

// setting is one compared field: its server name, its Config key, its
// value read from a config as text, and how to copy it from one config to
// another (what ApplySettings writes).
type setting[T any] struct {
	field, key string
	value      func(T) string
	set        func(dst *T, src T)
}

// diffs compares have (the server's) with want (this worker's).
func diffs[T any](object string, fields []setting[T], have, want T) []Diff {
	var out []Diff
	for _, f := range fields {
		if h, w := f.value(have), f.value(want); h != w {
			out = append(out, Diff{Object: object, Field: f.field, Key: f.key, Server: h, Worker: w})
		}
	}
	return out
}

// applied is have with want's value of every field in fields: the
// server's other settings stay as they are.
func applied[T any](fields []setting[T], have, want T) T {
	for _, f := range fields {
		f.set(&have, want)
	}
	return have
}

func dur(d time.Duration) string { return d.String() }

type (
	streamSetting   = setting[jetstream.StreamConfig]
	bucketSetting   = setting[jetstream.ObjectStoreConfig]
	consumerSetting = setting[jetstream.ConsumerConfig]
)

// streamSettings are the compared settings of a stream besides subjects
// (see missingSubjects), retention and storage (which cannot change in
// place: IncompatibleError). maxAgeKey is the Config key of its max age,
// limitsKey the prefix of the keys of its message and byte limits.
func streamSettings(maxAgeKey, limitsKey string) []streamSetting {
	return []streamSetting{
		{"max_msgs", limitsKey + "_max_msgs",
			func(c jetstream.StreamConfig) string { return strconv.FormatInt(c.MaxMsgs, 10) },
			func(d *jetstream.StreamConfig, s jetstream.StreamConfig) { d.MaxMsgs = s.MaxMsgs }},
		{"max_bytes", limitsKey + "_max_bytes",
			func(c jetstream.StreamConfig) string { return strconv.FormatInt(c.MaxBytes, 10) },
			func(d *jetstream.StreamConfig, s jetstream.StreamConfig) { d.MaxBytes = s.MaxBytes }},
		{"max_age", maxAgeKey,
			func(c jetstream.StreamConfig) string { return dur(c.MaxAge) },
			func(d *jetstream.StreamConfig, s jetstream.StreamConfig) { d.MaxAge = s.MaxAge }},
		{"duplicate_window", "duplicate_window",
			func(c jetstream.StreamConfig) string { return dur(c.Duplicates) },
			func(d *jetstream.StreamConfig, s jetstream.StreamConfig) { d.Duplicates = s.Duplicates }},
		{"replicas", "replicas",
			func(c jetstream.StreamConfig) string { return strconv.Itoa(c.Replicas) },
			func(d *jetstream.StreamConfig, s jetstream.StreamConfig) { d.Replicas = s.Replicas }},
		{"discard", "",
			func(c jetstream.StreamConfig) string { return c.Discard.String() },
			func(d *jetstream.StreamConfig, s jetstream.StreamConfig) { d.Discard = s.Discard }},
	}
}

// bodiesSettings are the compared settings of the bodies object store.
var bodiesSettings = []bucketSetting{
	{"ttl", "results_max_age",
		func(c jetstream.ObjectStoreConfig) string { return dur(c.TTL) },
		func(d *jetstream.ObjectStoreConfig, s jetstream.ObjectStoreConfig) { d.TTL = s.TTL }},
	{"max_bytes", "bodies_max_bytes",
		func(c jetstream.ObjectStoreConfig) string { return strconv.FormatInt(c.MaxBytes, 10) },
		func(d *jetstream.ObjectStoreConfig, s jetstream.ObjectStoreConfig) { d.MaxBytes = s.MaxBytes }},
	{"replicas", "replicas",
		func(c jetstream.ObjectStoreConfig) string { return strconv.Itoa(c.Replicas) },
		func(d *jetstream.ObjectStoreConfig, s jetstream.ObjectStoreConfig) { d.Replicas = s.Replicas }},
}

var (
	ackWaitSetting = consumerSetting{"ack_wait", "ack_wait",
		func(c jetstream.ConsumerConfig) string { return dur(c.AckWait) },
		func(d *jetstream.ConsumerConfig, s jetstream.ConsumerConfig) { d.AckWait = s.AckWait }}
	maxDeliverSetting = consumerSetting{"max_deliver", "max_deliver",
		func(c jetstream.ConsumerConfig) string { return strconv.Itoa(c.MaxDeliver) },
		func(d *jetstream.ConsumerConfig, s jetstream.ConsumerConfig) { d.MaxDeliver = s.MaxDeliver }}
	maxAckPendingSetting = consumerSetting{"max_ack_pending", "max_ack_pending",
		func(c jetstream.ConsumerConfig) string { return strconv.Itoa(c.MaxAckPending) },
		func(d *jetstream.ConsumerConfig, s jetstream.ConsumerConfig) { d.MaxAckPending = s.MaxAckPending }}
	inactiveSetting = consumerSetting{"inactive_threshold", "model_inactive_threshold",
		func(c jetstream.ConsumerConfig) string { return dur(c.InactiveThreshold) },
		func(d *jetstream.ConsumerConfig, s jetstream.ConsumerConfig) {
			d.InactiveThreshold = s.InactiveThreshold
		}}
)

// modelConsumerSettings are the compared settings of a model consumer.
var modelConsumerSettings = []consumerSetting{ackWaitSetting, maxDeliverSetting, maxAckPendingSetting, inactiveSetting}

// advisoryConsumerSettings are the compared settings of the advisory
// consumer; its other limits are salvo's constants.
var advisoryConsumerSettings = []consumerSetting{ackWaitSetting}

func streamObject(name string) string { return "stream " + name }

func consumerObject(stream, name string) string {
	return "consumer " + name + " of " + stream
}
