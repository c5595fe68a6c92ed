package queue_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/trace"

	"github.com/salvo-run/salvo/pkg/queue"
	"github.com/salvo-run/salvo/pkg/transport"
)

func TestTraceContextTravelsInHeaders(t *testing.T) {
	t.Parallel()
	b := setup(t)
	traceID, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	spanID, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: traceID, SpanID: spanID, TraceFlags: trace.FlagsSampled})
	pctx := trace.ContextWithSpanContext(ctx(t), sc)
	require.NoError(t, b.c.PublishRequest(pctx, newRequest("traced-1", "m", "")))

	got := make(chan *queue.Delivery, 1)
	acked := make(chan error, 1)
	consume(t, b.c, queue.ConsumeOptions{
		Slots: newSlotTable(1).get,
		Handler: func(ctx context.Context, d transport.Delivery) {
			acked <- d.Ack(ctx)
			got <- d.(*queue.Delivery) // StreamSeq, Subject and TraceContext are queue's own
		},
	})
	var d *queue.Delivery
	select {
	case d = <-got:
	case <-time.After(eventually):
		t.Fatal("no delivery")
	}
	require.NoError(t, <-acked)
	require.Equal(t, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", d.TraceParent())
	remote := trace.SpanContextFromContext(d.TraceContext(context.Background()))
	require.Equal(t, traceID, remote.TraceID())
	require.True(t, remote.IsRemote())
	require.Positive(t, d.StreamSeq())
	require.Equal(t, "salvo.req.m._", d.Subject())
}

func TestHealthyReportsLostServer(t *testing.T) {
	t.Parallel()
	b := setup(t)
	co := consume(t, b.c, queue.ConsumeOptions{
		Slots:   newSlotTable(1).get,
		Handler: func(ctx context.Context, d transport.Delivery) { _ = d.Ack(ctx) },
	})
	require.NoError(t, co.Healthy())
	b.srv.Shutdown()
	waitFor(t, eventually, "the consumer to notice", func() bool { return co.Healthy() != nil })
	require.ErrorIs(t, co.Healthy(), queue.ErrUnhealthy)
}

func TestServerVersionCheck(t *testing.T) {
	t.Parallel()
	oldest := [3]int{2, 9, 0}
	for v, want := range map[string]bool{
		"2.9.0": true, "2.9.10": true, "2.15.2": true, "v2.10.0-beta.1": true, "3.0.0": true,
		"2.8.4": false, "1.9.9": false, "": false, "garbage": false,
	} {
		require.Equal(t, want, queue.ServerAtLeast(v, oldest), v)
	}
}

// Slots is the per-model capacity a worker resizes at runtime.
func ExampleSlots() {
	s := queue.NewSlots(2)
	fmt.Println(s.TryAcquire(5), s.InUse(), s.Free())
	s.SetLimit(4)
	fmt.Println(s.Free())
	s.Release(2)
	fmt.Println(s.InUse(), s.Limit())
	// Output:
	// 2 2 0
	// 2
	// 0 4
}
