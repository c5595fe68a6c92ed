package queue_test

import (
	"context"
	"encoding/json"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/salvo-run/salvo/internal/testnats"
	"github.com/salvo-run/salvo/pkg/lifecycle"
	"github.com/salvo-run/salvo/pkg/queue"
)

// BenchmarkPublish measures submitting requests to the REQUESTS stream
// (file storage, embedded server), one op per request:
//
//   - salvo-async: Publisher.Publish for every request, then Flush (what the
//     producer CLI does);
//   - salvo-sync: Client.PublishRequest, waiting for each ack in turn;
//   - jetstream-async: the baseline, raw PublishMsgAsync of the same
//     pre-encoded messages with the same window, then PublishAsyncComplete.
//
// salvo-async / jetstream-async is the price of validation, encoding, trace
// headers and per-message ack tracking. Each run checks that the stream
// holds exactly b.N messages.
func BenchmarkPublish(b *testing.B) {
	for _, kind := range []string{"jetstream-async", "salvo-async", "salvo-sync"} {
		b.Run(kind, func(b *testing.B) { benchPublish(b, kind) })
	}
}

func benchPublish(b *testing.B, kind string) {
	srv := testnats.New(b)
	nc := srv.Connect()
	c, err := queue.New(nc, queue.Config{Prefix: "bench"}, zerolog.Nop())
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute+time.Duration(b.N)*time.Millisecond)
	defer cancel()
	if err := c.Provision(ctx); err != nil {
		b.Fatal(err)
	}
	reqs := benchRequests(b.N)
	var publish func() error
	switch kind {
	case "salvo-async":
		publish = func() error {
			p := c.NewPublisher()
			for _, r := range reqs {
				if err := p.Publish(ctx, r); err != nil {
					return err
				}
			}
			return p.Flush(ctx)
		}
	case "salvo-sync":
		publish = func() error {
			for _, r := range reqs {
				if err := c.PublishRequest(ctx, r); err != nil {
					return err
				}
			}
			return nil
		}
	default:
		msgs := rawMessages(b, c, reqs)
		js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(queue.PublishWindowDefault))
		if err != nil {
			b.Fatal(err)
		}
		publish = func() error {
			for _, m := range msgs {
				if _, err := js.PublishMsgAsync(m); err != nil {
					return err
				}
			}
			select {
			case <-js.PublishAsyncComplete():
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	cpu := procCPU()
	b.ResetTimer()
	if err := publish(); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	if s := b.Elapsed().Seconds(); s > 0 {
		b.ReportMetric(float64(b.N)/s, "req/s")
	}
	b.ReportMetric(float64((procCPU()-cpu).Microseconds())/float64(b.N), "cpu-us/req")
	js, err := jetstream.New(nc)
	if err != nil {
		b.Fatal(err)
	}
	s, err := js.Stream(ctx, c.RequestsStream())
	if err != nil {
		b.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		b.Fatal(err)
	}
	if info.State.Msgs != uint64(b.N) {
		b.Fatalf("stream holds %d messages, want %d", info.State.Msgs, b.N)
	}
}

// rawMessages encodes reqs as salvo would, outside the timer.
func rawMessages(b *testing.B, c *queue.Client, reqs []*lifecycle.Request) []*nats.Msg {
	b.Helper()
	msgs := make([]*nats.Msg, len(reqs))
	for i, r := range reqs {
		subj, err := c.RequestSubject(r.Model, r.BatchID)
		if err != nil {
			b.Fatal(err)
		}
		data, err := json.Marshal(r)
		if err != nil {
			b.Fatal(err)
		}
		msgs[i] = nats.NewMsg(subj)
		msgs[i].Data = data
		msgs[i].Header.Set(jetstream.MsgIDHeader, queue.MsgID(r.BatchID, r.ID))
	}
	return msgs
}

func benchRequests(n int) []*lifecycle.Request {
	const model, batch = "bench/model:v1", "b-bench"
	expires := time.Now().Add(time.Hour).UTC()
	reqs := make([]*lifecycle.Request, n)
	for i := range reqs {
		reqs[i] = &lifecycle.Request{
			V: lifecycle.WireVersion, ID: fmt.Sprintf("%s-r%06d", batch, i), BatchID: batch, CustomID: fmt.Sprintf("task-%d", i),
			Model: model, Method: "POST", URL: "/v1/chat/completions", ExpiresAt: expires,
			Body: fmt.Appendf(nil, `{"model":%q,"messages":[{"role":"user","content":"question %d"}]}`, model, i),
		}
	}
	return reqs
}

// procCPU is the user+system CPU time of this process so far.
func procCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
