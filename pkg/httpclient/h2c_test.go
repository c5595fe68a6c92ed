package httpclient

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/salvo-run/salvo/internal/mockupstream"
	"github.com/salvo-run/salvo/pkg/lifecycle"
)

// A route with h2c speaks HTTP/2 without TLS, concurrent calls included;
// a route without it stays on HTTP/1.1.
func TestH2CRouteSpeaksHTTP2(t *testing.T) {
	t.Parallel()
	const plainModel = "plain-model"
	c, b := setup(t, mockupstream.Options{Script: mockupstream.Script{
		Latency: &mockupstream.Latency{Min: 50 * time.Millisecond},
	}}, func(cfg *Config) {
		r := cfg.Routes[testModel]
		r.H2C = true
		cfg.Routes[testModel] = r
		cfg.Routes[plainModel] = Route{BaseURL: r.BaseURL}
	})

	const n = 20
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			resp := doWithin(t, c, context.Background(), chatRequest(fmt.Sprintf("r-h2c-%d", i), nil), Call{}, hangLimit)
			require.Nil(t, resp.Failure)
			require.Equal(t, http.StatusOK, resp.Status)
		})
	}
	wg.Wait()
	for i := range n {
		got := b.mock.Received(fmt.Sprintf("r-h2c-%d", i))
		require.Len(t, got, 1)
		require.Equal(t, "HTTP/2.0", got[0].Proto)
	}

	plain := chatRequest("r-plain", nil)
	plain.Model = plainModel
	resp := doWithin(t, c, context.Background(), plain, Call{}, hangLimit)
	require.Nil(t, resp.Failure)
	require.Equal(t, "HTTP/1.1", b.mock.Received("r-plain")[0].Proto)
}

func TestH2CNeedsAnHTTPBaseURL(t *testing.T) {
	t.Parallel()
	err := Config{Routes: map[string]Route{"m": {BaseURL: "https://api.example.com", H2C: true}}}.WithDefaults().Validate()
	var ce *lifecycle.ConfigError
	require.ErrorAs(t, err, &ce)
	require.Equal(t, `routes["m"].h2c`, ce.Key)
}
