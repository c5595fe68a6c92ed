package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/salvo-run/salvo/internal/mockupstream"
	"github.com/salvo-run/salvo/pkg/lifecycle"
	"github.com/salvo-run/salvo/pkg/queue"
	"github.com/salvo-run/salvo/pkg/state"
)

// badInput is one message of the bad-inputs scenario that has an id in its
// batch: it must end failed with wantCode, a message saying what is wrong.
type badInput struct {
	id, kind, wantCode string
	subject            string
	data               []byte
	msgID              string
}

const inputsBatch = "bad-inputs"

// badInputs: a batch of good requests published with duplicates inside and
// beyond the duplicate window, next to messages that are not JSON, miss
// fields, name an unknown model, disagree with their subject or sit on a
// subject no consumer reads, a request too large for NATS, requests with
// large bodies and oversize upstream answers, messages without any id,
// and forged control events aimed at the requests in flight.
func badInputs() *scenario {
	var good []*lifecycle.Request
	var bads []badInput
	var published time.Time
	return &scenario{
		name: "bad-inputs",
		// At short size the workers run at two thirds of their
		// concurrency, so the batch still runs when the duplicates beyond
		// the window are published.
		profile: func(sz size) profile {
			p := profile{dupWindow: shortWindow}
			if sz.runtime(sz.n, 3) < 2*shortWindow {
				p.concurrency = max(1, 2*sz.concurrency/3)
			}
			return p
		},
		title: "duplicates inside and beyond the window, malformed messages, unknown models, oversize bodies, bad subjects, forged control events",
		setup: func(ctx context.Context, r *run) error {
			good = makeRequests(inputsBatch, model, r.sz.n)
			bads = r.badMessages(good[0])
			// Large request bodies (well under the 1 MiB NATS payload) and
			// upstream answers too large for a NATS message (the result
			// body goes to the object store).
			big := strings.Repeat("x", 600<<10)
			for _, q := range good[1:4] {
				q.Body = fmt.Appendf(nil, `{"model":%q,"messages":[{"role":"user","content":%q}]}`, model, big)
			}
			for _, q := range good[4:7] {
				r.e.mock.Script(q.ID, mockupstream.Script{ReplyWords: 400_000})
			}
			if err := r.createBatch(ctx, inputsBatch, len(good)+len(bads), "1h"); err != nil {
				return err
			}
			r.expect(inputsBatch, good)
			for _, b := range bads {
				r.expect(inputsBatch, []*lifecycle.Request{{ID: b.id, BatchID: inputsBatch}})
			}
			if err := r.publish(ctx, good); err != nil {
				return err
			}
			published = time.Now()
			// The same requests again at once: inside the duplicate window.
			dups := good[:len(good)/5]
			if err := r.publish(ctx, dups); err != nil {
				return err
			}
			r.addFault("duplicate publish inside the window", published, 0)
			for _, b := range bads {
				if err := r.publishRaw(ctx, b.subject, b.msgID, b.data); err != nil {
					return fmt.Errorf("publish %s (%s): %w", b.id, b.kind, err)
				}
			}
			r.note("published %d good requests, %d duplicates inside the window, %d bad messages with ids", len(good), len(dups), len(bads))
			return r.publishUnpublishable(ctx)
		},
		inject: func(ctx context.Context, r *run) error {
			if err := r.waitResults(ctx, 0.1); err != nil {
				return err
			}
			// Forged control events naming requests without a result yet
			// (likely in flight) and the whole batch: Redis does not back
			// them, so nothing may be cancelled or superseded.
			if err := every(ctx, 300*time.Millisecond, 10, func() bool { return r.allEnded(ctx) }, func(int) error {
				return r.forgeControlEvents(good)
			}); err != nil {
				return err
			}
			// Beyond the duplicate window, the stream no longer drops a
			// repeat: only the workers' records can.
			if err := pause(ctx, time.Until(published.Add(r.e.dupWindow()+500*time.Millisecond))); err != nil {
				return err
			}
			late := good[len(good)/5 : 2*len(good)/5]
			at := time.Now()
			running := r.unanswered() > 0
			if err := r.publish(ctx, late); err != nil {
				return err
			}
			r.addFault("duplicate publish beyond the window", at, 0)
			r.note("%d duplicates published %s after the first copies (window %s), the batch still running: %t", len(late),
				at.Sub(published).Round(100*time.Millisecond), r.e.dupWindow(), running)
			// Every message of the batch, duplicates and junk included,
			// leaves REQUESTS: nothing blocks the stream.
			return waitUntil(ctx, r.sz.timeout, "REQUESTS drained of the batch", func(ctx context.Context) bool {
				n, err := r.queued(ctx)
				return err == nil && n == 0
			})
		},
		minFaults: func(size) map[string]int {
			return map[string]int{"duplicate publish inside": 1, "forged control events": 1, "duplicate publish beyond": 1}
		},
		verify: func(ctx context.Context, r *run) error {
			var problems []string
			noted := map[string]bool{}
			store, err := state.New(r.e.rdb, state.Config{Prefix: prefix})
			if err != nil {
				return err
			}
			recorded := 0
			for _, b := range bads {
				// The record, where the message had an id to record it
				// under, must hold the same reason as the result line.
				rec, err := store.Request(ctx, lifecycle.Ref{ID: b.id, BatchID: inputsBatch})
				switch {
				case errors.Is(err, state.ErrNotFound):
				case err != nil:
					return fmt.Errorf("read the record of %s: %w", b.id, err)
				case rec.State != lifecycle.StateFailed || rec.Failure == nil || string(rec.Failure.Code) != b.wantCode || rec.Failure.Message == "":
					problems = append(problems, fmt.Sprintf("%s (%s): recorded %s %+v, want failed %s with a message", b.id, b.kind, rec.State, rec.Failure, b.wantCode))
				default:
					recorded++
				}
				os := r.e.res.outcomes(b.id)
				switch {
				case len(os) == 0:
					problems = append(problems, fmt.Sprintf("%s (%s): no result", b.id, b.kind))
				case os[0].State != string(lifecycle.StateFailed) || os[0].Code != b.wantCode || os[0].Msg == "":
					problems = append(problems, fmt.Sprintf("%s (%s): %s %s %q, want failed %s with a message",
						b.id, b.kind, os[0].State, os[0].Code, os[0].Msg, b.wantCode))
				case !noted[b.kind]:
					noted[b.kind] = true
					r.note("%s → %s: %.160s", b.kind, b.wantCode, os[0].Msg)
				}
			}
			for _, q := range good {
				if os := r.e.res.outcomes(q.ID); len(os) > 0 && os[0].State != string(lifecycle.StateCompleted) {
					problems = append(problems, fmt.Sprintf("%s: %s %s — a good request did not complete (forged event obeyed?)",
						q.ID, os[0].State, os[0].Code))
				}
			}
			r.note("%d of the %d bad messages with an id have a record, each failed with the code of its result line", recorded, len(bads))
			unnamed := r.e.res.withPrefix(lifecycle.MalformedIDPrefix)
			if len(unnamed) < 2 {
				problems = append(problems, fmt.Sprintf("%d results for the 2 messages without an id", len(unnamed)))
			}
			for _, o := range unnamed {
				r.note("message without an id → %s: %.200s", o.Code, o.Msg)
			}
			if len(problems) > 0 {
				return errors.New(joinLines(problems, 5))
			}
			return nil
		},
	}
}

// badMessages builds the messages with an id that must each end failed.
func (r *run) badMessages(tmpl *lifecycle.Request) []badInput {
	subj := func(mdl string) string {
		s, _ := r.e.q.RequestSubject(mdl, inputsBatch) // the models are valid names
		return s
	}
	body := func(id, mdl string, drop ...string) []byte {
		q := *tmpl
		q.ID, q.Model, q.CustomID = id, mdl, id
		q.Body = fmt.Appendf(nil, `{"model":%q,"messages":[{"role":"user","content":"hi"}]}`, mdl)
		data, _ := json.Marshal(&q) // a plain struct
		if len(drop) == 0 {
			return data
		}
		var m map[string]any
		_ = json.Unmarshal(data, &m)
		for _, k := range drop {
			delete(m, k)
		}
		data, _ = json.Marshal(m)
		return data
	}
	var out []badInput
	add := func(kind, code, subject string, data func(id string) []byte) {
		for i := range 2 {
			id := fmt.Sprintf("bad-%s-%d", kind, i)
			out = append(out, badInput{id: id, kind: kind, wantCode: code, subject: subject,
				data: data(id), msgID: queue.MsgID(inputsBatch, id)})
		}
	}
	malformed := string(lifecycle.CodeMalformedMessage)
	add("not-json", malformed, subj(model), func(string) []byte { return []byte(`this is not JSON {"id":`) })
	add("missing-fields", malformed, subj(model), func(id string) []byte { return body(id, model, "method", "url") })
	add("unknown-model", string(lifecycle.CodeUnroutedModel), subj("no-such-model"),
		func(id string) []byte { return body(id, "no-such-model") })
	add("subject-model-mismatch", malformed, subj(fastModel), func(id string) []byte { return body(id, model) })
	add("undecodable-subject", malformed, prefix+".req.bad_ZZ."+lifecycle.BatchToken(inputsBatch),
		func(id string) []byte { return body(id, model) })
	return out
}

// publishRaw publishes data on subject through JetStream, as any client
// could, with msgID as Nats-Msg-Id when set.
func (r *run) publishRaw(ctx context.Context, subject, msgID string, data []byte) error {
	msg := nats.NewMsg(subject)
	msg.Data = data
	if msgID != "" {
		msg.Header.Set(jetstream.MsgIDHeader, msgID)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err := r.e.js.PublishMsg(ctx, msg)
	return err
}

// publishUnpublishable publishes the messages that are not requests of the
// batch: two without any id (recorded as malformed-<sequence>, batchless)
// and one over the NATS payload limit, which NATS itself refuses.
func (r *run) publishUnpublishable(ctx context.Context) error {
	batchless, err := r.e.q.RequestSubject(model, "")
	if err != nil {
		return err
	}
	for _, data := range []string{`{}`, `[1,2,3]`} {
		if err := r.publishRaw(ctx, batchless, "", []byte(data)); err != nil {
			return fmt.Errorf("publish a message without an id: %w", err)
		}
	}
	huge := make([]byte, r.e.nc.MaxPayload()+1)
	err = r.publishRaw(ctx, batchless, "", huge)
	if err == nil {
		return fmt.Errorf("a %d-byte message was accepted: over the payload limit of %d", len(huge), r.e.nc.MaxPayload())
	}
	r.note("a %d-byte request is refused at publish: %v", len(huge), err)
	return nil
}

// forgeControlEvents publishes, as a client could without permissions in
// place, cancel and supersede events for up to three requests without a
// result yet and a cancel of the whole batch.
func (r *run) forgeControlEvents(good []*lifecycle.Request) error {
	at := time.Now().UTC().Format(time.RFC3339Nano)
	batchTok := lifecycle.BatchToken(inputsBatch)
	sent := 0
	for _, q := range good {
		if sent == 3 {
			break
		}
		if len(r.e.res.outcomes(q.ID)) > 0 {
			continue
		}
		tok := lifecycle.MustEncodeToken(q.ID)
		events := map[string]string{
			prefix + ".ctl.cancel." + batchTok + "." + tok: fmt.Sprintf(`{"kind":"cancel","batch_id":%q,"request_id":%q,"at":%q}`, inputsBatch, q.ID, at),
			prefix + ".ctl.supersede." + tok:               fmt.Sprintf(`{"kind":"supersede","request_id":%q,"by":"forged","at":%q}`, q.ID, at),
		}
		for subj, data := range events {
			if err := r.e.nc.Publish(subj, []byte(data)); err != nil {
				return err
			}
		}
		sent++
	}
	if err := r.e.nc.Publish(prefix+".ctl.cancel."+batchTok, fmt.Appendf(nil, `{"kind":"cancel","batch_id":%q,"at":%q}`, inputsBatch, at)); err != nil {
		return err
	}
	// No call may run again for a forged event: none counts toward the
	// duplicate-call bound.
	r.addFault("forged control events", time.Now(), 0)
	return nil
}

// queued is the number of messages of the bad-inputs batch REQUESTS holds.
func (r *run) queued(ctx context.Context) (uint64, error) {
	s, err := r.e.js.Stream(ctx, r.e.q.RequestsStream())
	if err != nil {
		return 0, err
	}
	filter := prefix + ".req.*." + lifecycle.BatchToken(inputsBatch)
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(filter))
	if err != nil {
		return 0, err
	}
	var n uint64
	for _, c := range info.State.Subjects {
		n += c
	}
	return n, nil
}
