package testredis_test

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/salvo-run/salvo/internal/testredis"
)

// A Sentinel with a password of its own names the password-protected
// primary; a failover client with both passwords writes to the primary,
// one without the Sentinel's is refused.
func TestSentinelMonitorsThePrimary(t *testing.T) {
	t.Parallel()
	primary := testredis.New(t, testredis.WithPassword("pw-primary"))
	sentinel := testredis.NewSentinel(t, primary, "pw-sentinel")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	sc := redis.NewSentinelClient(&redis.Options{Addr: sentinel.Addr, Password: "pw-sentinel"})
	defer sc.Close()
	addr, err := sc.GetMasterAddrByName(ctx, testredis.MasterName).Result()
	require.NoError(t, err)
	require.Equal(t, primary.Addr, addr[0]+":"+addr[1])

	c := redis.NewFailoverClient(&redis.FailoverOptions{
		MasterName: testredis.MasterName, SentinelAddrs: []string{sentinel.Addr},
		SentinelPassword: "pw-sentinel", Password: "pw-primary",
	})
	defer c.Close()
	require.NoError(t, c.Set(ctx, primary.Prefix+":k", "v", time.Minute).Err())
	got, err := primary.Client.Get(ctx, primary.Prefix+":k").Result()
	require.NoError(t, err)
	require.Equal(t, "v", got)

	noPw := redis.NewSentinelClient(&redis.Options{Addr: sentinel.Addr})
	defer noPw.Close()
	require.True(t, redis.IsAuthError(noPw.Ping(ctx).Err()), "the Sentinel requires its password")
}
