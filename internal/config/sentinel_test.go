package config_test

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/salvo-run/salvo/internal/config"
	"github.com/salvo-run/salvo/internal/testredis"
)

const sentinelPassword = "sentinel-Pa55-5e47"

// A worker reaches its Redis through a Sentinel that requires a password
// of its own, in front of a primary that requires another: it connects
// and writes to the primary. Without the Sentinel's password, with a
// wrong one, or with a wrong primary password, the start fails naming
// the setting that was refused, and no password shows.
func TestStartThroughASentinelWithPasswords(t *testing.T) {
	t.Parallel()
	primary := testredis.New(t, testredis.WithPassword(redisDefaultPassword))
	sentinel := testredis.NewSentinel(t, primary, sentinelPassword)
	s := addrsSettings(t, primary.Prefix, sentinel.Addr)
	s.RedisMaster = testredis.MasterName
	s.Redis.Password = redisDefaultPassword
	s.Redis.SentinelPassword = sentinelPassword
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	p, err := config.Start(ctx, s, config.Options{})
	require.NoError(t, err)
	_, isSentinel := p.Redis.(*redis.Client)
	require.True(t, isSentinel, "redis_master makes a failover client")
	key := primary.Prefix + ":through-sentinel"
	require.NoError(t, p.Redis.Set(ctx, key, "v", time.Minute).Err())
	got, err := primary.Client.Get(ctx, key).Result()
	require.NoError(t, err)
	require.Equal(t, "v", got, "the write landed on the primary")
	require.NoError(t, p.Stop(ctx))

	sentinelKeys := "(check redis.sentinel_password (SALVO_REDIS_SENTINEL_PASSWORD); redis.sentinel_username (SALVO_REDIS_SENTINEL_USERNAME))"
	for name, tc := range map[string]struct {
		change func(*config.Settings)
		want   []string
	}{
		"no Sentinel password": {
			change: func(s *config.Settings) { s.Redis.SentinelPassword = "" },
			want:   []string{"redis: ping [" + sentinel.Addr + "]", "NOAUTH", sentinelKeys},
		},
		"wrong Sentinel password": {
			change: func(s *config.Settings) { s.Redis.SentinelPassword = wrongPassword },
			want:   []string{"WRONGPASS", sentinelKeys},
		},
		"wrong primary password": {
			change: func(s *config.Settings) { s.Redis.Password = wrongPassword },
			want: []string{"WRONGPASS",
				"(check redis.password (SALVO_REDIS_PASSWORD); redis.username (SALVO_REDIS_USERNAME))"},
		},
	} {
		bad := s
		tc.change(&bad)
		p, err := config.Start(ctx, bad, config.Options{})
		require.Nil(t, p, name)
		require.Error(t, err, name)
		t.Logf("%s: %v", name, err)
		for _, w := range tc.want {
			require.Contains(t, err.Error(), w, name)
		}
		for _, secret := range []string{redisDefaultPassword, sentinelPassword, wrongPassword} {
			require.NotContains(t, err.Error(), secret, name)
		}
	}
}
