package api_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/nats-io/nats.go/micro"
	"github.com/stretchr/testify/require"

	"github.com/salvo-run/salvo/pkg/api"
)

// TestServiceIsDiscoverable asks the micro protocol's own subjects what
// `nats micro ls/info/stats` ask.
func TestServiceIsDiscoverable(t *testing.T) {
	t.Parallel()
	b := setup(t, api.Config{Prefix: "acme"})
	get := func(subject string, out any) {
		t.Helper()
		msg, err := b.nc.Request(subject, nil, 5*time.Second)
		require.NoError(t, err)
		require.NoError(t, json.Unmarshal(msg.Data, out))
	}

	var ping micro.Ping
	get("$SRV.PING.salvo", &ping)
	require.Equal(t, "salvo", ping.Name)
	require.Equal(t, "0.0.0-dev", ping.Version)

	var info micro.Info
	get("$SRV.INFO.salvo", &info)
	require.NotEmpty(t, info.Description)
	require.Equal(t, "dev", info.Metadata["salvo_version"])
	require.Equal(t, "acme", info.Metadata["prefix"])
	subjects := map[string]micro.EndpointInfo{}
	for _, ep := range info.Endpoints {
		subjects[ep.Subject] = ep
	}
	require.Len(t, subjects, len(api.Endpoints))
	for _, name := range api.Endpoints {
		ep, ok := subjects["acme.api."+name]
		require.True(t, ok, "no endpoint on acme.api.%s", name)
		require.Equal(t, "q", ep.QueueGroup, "any process answers")
		require.Contains(t, ep.Metadata["request_schema"], api.SchemaURL+"#/$defs/"+name+".request")
		require.NotEmpty(t, ep.Metadata["response_schema"])
	}

	b.ok(t, api.EndpointBatchCreate, `{"id":"b1"}`, nil)
	b.fail(t, api.EndpointBatchGet, `{}`)
	// The micro package counts a request after its handler returns, so
	// the reply can arrive first: wait for the counts.
	counted := map[string]*micro.EndpointStats{}
	require.Eventually(t, func() bool {
		var stats micro.Stats
		msg, err := b.nc.Request("$SRV.STATS.salvo", nil, 5*time.Second)
		if err != nil || json.Unmarshal(msg.Data, &stats) != nil {
			return false
		}
		for _, ep := range stats.Endpoints {
			counted[ep.Name] = ep
		}
		return counted["batch_create"] != nil && counted["batch_create"].NumRequests == 1 &&
			counted["batch_get"] != nil && counted["batch_get"].NumRequests == 1
	}, 5*time.Second, 5*time.Millisecond)
	require.Equal(t, 0, counted["batch_create"].NumErrors)
	require.Equal(t, 1, counted["batch_get"].NumErrors)
	require.Contains(t, counted["batch_get"].LastError, "invalid_argument")
}
