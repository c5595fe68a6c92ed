package producer_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/salvo-run/salvo/internal/mockupstream"
	"github.com/salvo-run/salvo/internal/producer"
	"github.com/salvo-run/salvo/internal/telemetry"
)

// One trace per request, from the submit to the upstream: the producer's
// publish span is the parent of the worker's processing span, whose
// upstream call span is what the mock upstream received as traceparent;
// the claim, the transition and the result publish are spans of the same
// trace, and every publish span hangs off the batch's submit span.
func TestOneTraceFromSubmitToUpstream(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	s, mock := startStack(t, mockupstream.Options{Record: true}, nil, tp)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	const n = 3
	_, err := producer.Submit(ctx, s.nc, producer.SubmitOptions{Path: writeFile(t, n), BatchID: "b-traced", Prefix: s.prefix, Tracer: tp})
	require.NoError(t, err)
	s.waitCompleted(ctx, t, "b-traced")
	// The handler ends its span after the ack: wait for the last ones.
	require.Eventually(t, func() bool { return len(byName(exp.GetSpans(), "salvo.worker.process")) == n }, 10*time.Second, 10*time.Millisecond)

	spans := exp.GetSpans()
	submits := byName(spans, telemetry.SpanSubmit)
	require.Len(t, submits, 1)
	submit := submits[0]
	publishes := byName(spans, telemetry.SpanPublish)
	require.Len(t, publishes, n)
	for _, pub := range publishes {
		id := attr(pub, "salvo.request_id")
		require.NotEmpty(t, id)
		tid := pub.SpanContext.TraceID()
		require.Equal(t, submit.SpanContext.TraceID(), tid, "the publish is part of the batch's trace")
		require.Equal(t, submit.SpanContext.SpanID(), pub.Parent.SpanID())

		var process tracetest.SpanStub
		for _, p := range byName(spans, "salvo.worker.process") {
			if attr(p, "salvo.request_id") == id {
				process = p
			}
		}
		require.Equal(t, tid, process.SpanContext.TraceID(), "the worker continues the producer's trace")
		require.Equal(t, pub.SpanContext.SpanID(), process.Parent.SpanID())
		require.True(t, process.Parent.IsRemote())

		children := map[string]tracetest.SpanStub{}
		for _, sp := range spans {
			if sp.Parent.SpanID() == process.SpanContext.SpanID() {
				children[sp.Name] = sp
			}
		}
		for _, name := range []string{"salvo.claim", "salvo.ratelimit.admit", "salvo.upstream.call", "salvo.record", "salvo.result.publish"} {
			require.Contains(t, children, name, "%s of %s", name, id)
		}
		call := children["salvo.upstream.call"]
		received := mock.Received(id)
		require.Len(t, received, 1)
		require.Equal(t, "00-"+tid.String()+"-"+call.SpanContext.SpanID().String()+"-01", received[0].Header.Get("traceparent"),
			"the upstream received the call span's context")
		for _, sp := range spans {
			for _, kv := range sp.Attributes {
				require.NotContains(t, kv.Value.String(), "sk-test", "no API key in a span")
			}
		}
	}
}

func byName(spans tracetest.SpanStubs, name string) []tracetest.SpanStub {
	var out []tracetest.SpanStub
	for _, s := range spans {
		if s.Name == name {
			out = append(out, s)
		}
	}
	return out
}

func attr(s tracetest.SpanStub, key attribute.Key) string {
	for _, kv := range s.Attributes {
		if kv.Key == key {
			return kv.Value.String()
		}
	}
	return ""
}
