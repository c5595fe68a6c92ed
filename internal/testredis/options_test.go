package testredis_test

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/salvo-run/salvo/internal/testredis"
	"github.com/salvo-run/salvo/internal/testtls"
)

// A server with a password, an ACL user, TLS (when redis-server has it)
// and Cluster mode answers its own client and refuses one without the
// password.
func TestOptionsMakeTheServerAskForThem(t *testing.T) {
	t.Parallel()
	files := testtls.New(t)
	opts := []testredis.Option{testredis.WithPassword("pw-default"), testredis.WithUser("salvo", "pw-acl"), testredis.WithCluster()}
	scheme, clientTLS := "redis://", files.ClientConfig(t)
	if testredis.TLSSupported() {
		opts = append(opts, testredis.WithTLS(files))
		scheme = "rediss://"
	} else {
		clientTLS = nil
	}
	s := testredis.New(t, opts...)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.Equal(t, scheme+s.Addr, s.URL())
	who, err := s.Client.Do(ctx, "ACL", "WHOAMI").Text()
	require.NoError(t, err)
	require.Equal(t, "salvo", who)
	info, err := s.Client.ClusterInfo(ctx).Result()
	require.NoError(t, err)
	require.Contains(t, info, "cluster_state:ok")

	c := redis.NewClient(&redis.Options{Addr: s.Addr, Password: "pw-default", TLSConfig: clientTLS})
	defer c.Close()
	require.NoError(t, c.Ping(ctx).Err(), "the default user with requirepass")
	wrong := redis.NewClient(&redis.Options{Addr: s.Addr, Password: "nope", TLSConfig: clientTLS})
	defer wrong.Close()
	require.True(t, redis.IsAuthError(wrong.Ping(ctx).Err()))
}
