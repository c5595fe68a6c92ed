package main

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// outcome is what the harness saw of one result message, live.
type outcome struct {
	State string
	Code  string
	Msg   string
	At    time.Time
}

// resultWatch subscribes to every result subject on core NATS and notes
// when each result arrived (for progress and recovery times) and its
// outcome. It is not the checker's count: a core subscription misses what
// is published while the harness's connection is down; the checker reads
// the stream.
type resultWatch struct {
	sub *nats.Subscription

	mu      sync.Mutex
	times   []time.Time
	byBatch map[string]int
	byID    map[string][]outcome
}

func watchResults(nc *nats.Conn) (*resultWatch, error) {
	w := &resultWatch{byBatch: map[string]int{}, byID: map[string][]outcome{}}
	sub, err := nc.Subscribe(prefix+".res.>", w.note)
	if err != nil {
		return nil, err
	}
	if err := sub.SetPendingLimits(-1, -1); err != nil {
		return nil, err
	}
	w.sub = sub
	return w, nil
}

func (w *resultWatch) note(m *nats.Msg) {
	now := time.Now()
	var r struct {
		ID    string `json:"id"`
		State string `json:"state"`
		Error *struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	_ = json.Unmarshal(m.Data, &r) // a line that does not decode still counts as arrived
	o := outcome{State: r.State, At: now}
	if r.Error != nil {
		o.Code, o.Msg = r.Error.Code, r.Error.Message
	}
	batch := m.Subject[strings.LastIndexByte(m.Subject, '.')+1:]
	w.mu.Lock()
	w.times = append(w.times, now)
	w.byBatch[batch]++
	w.byID[r.ID] = append(w.byID[r.ID], o)
	w.mu.Unlock()
}

// total is the number of result messages seen.
func (w *resultWatch) total() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.times)
}

// outcomes are the result messages seen for id.
func (w *resultWatch) outcomes(id string) []outcome {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]outcome(nil), w.byID[id]...)
}

// withPrefix are the first outcomes seen of the ids starting with p.
func (w *resultWatch) withPrefix(p string) []outcome {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []outcome
	for id, os := range w.byID {
		if strings.HasPrefix(id, p) {
			out = append(out, os[0])
		}
	}
	return out
}

func (w *resultWatch) stop() { _ = w.sub.Unsubscribe() }

// pause waits d or until ctx ends.
func pause(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
