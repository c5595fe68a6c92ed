package config

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/salvo-run/salvo/internal/testtls"
)

// Sentinel and Cluster clients get the same user, password and TLS as a
// single node, and the Sentinels their own credentials.
func TestSentinelAndClusterOptionsCarryCredentialsAndTLS(t *testing.T) {
	t.Parallel()
	files := testtls.New(t)
	pwFile := filepath.Join(t.TempDir(), "pw")
	require.NoError(t, os.WriteFile(pwFile, []byte("node-pw\n"), 0o600))
	s := Default()
	s.RedisAddrs = []string{"127.0.0.1:26379", "127.0.0.1:26380"}
	s.RedisMaster = "mymaster"
	s.Redis = RedisConn{
		Username: "salvo", PasswordFile: pwFile, SentinelUsername: "sentinel", SentinelPassword: "sentinel-pw",
	}
	s.Redis.TLS.CA, s.Redis.TLS.Cert, s.Redis.TLS.Key, s.Redis.TLS.ServerName = files.CA, files.ClientCert, files.ClientKey, "redis.internal"
	require.NoError(t, s.Validate())

	o, err := s.redisUniversalOptions()
	require.NoError(t, err)
	require.Equal(t, "salvo", o.Username)
	require.Equal(t, "node-pw", o.Password, "read from password_file, line break dropped")
	require.Equal(t, "sentinel", o.SentinelUsername)
	require.Equal(t, "sentinel-pw", o.SentinelPassword)
	require.NotNil(t, o.TLSConfig)
	require.NotNil(t, o.TLSConfig.RootCAs)
	require.Len(t, o.TLSConfig.Certificates, 1)
	require.Equal(t, "redis.internal", o.TLSConfig.ServerName)
	require.Equal(t, o.TLSConfig, o.Failover().TLSConfig, "the Sentinel client dials with it")
	require.Equal(t, "sentinel-pw", o.Failover().SentinelPassword)

	s.RedisMaster = ""
	s.Redis.SentinelUsername, s.Redis.SentinelPassword = "", ""
	o, err = s.redisUniversalOptions()
	require.NoError(t, err)
	cl := o.Cluster()
	require.Equal(t, "salvo", cl.Username)
	require.Equal(t, "node-pw", cl.Password)
	require.Equal(t, o.TLSConfig, cl.TLSConfig, "the Cluster client dials every node with it")
	c, err := s.redisClient()
	require.NoError(t, err)
	defer c.Close()
	_, isCluster := c.(*redis.ClusterClient)
	require.True(t, isCluster)
}

// The single-node client takes redis.* over redis_url, and a rediss://
// URL stays TLS without redis.tls keys.
func TestSingleNodeOptionsFromURLAndKeys(t *testing.T) {
	t.Parallel()
	s := Default()
	s.RedisURL = "rediss://127.0.0.1:6390/2"
	s.Redis.Username, s.Redis.Password = "salvo", "pw"
	c, err := s.redisClient()
	require.NoError(t, err)
	defer c.Close()
	o := c.(*redis.Client).Options()
	require.Equal(t, "salvo", o.Username)
	require.Equal(t, "pw", o.Password)
	require.Equal(t, 2, o.DB)
	require.NotNil(t, o.TLSConfig, "rediss:// is TLS")
}

// With lease.wait_replicas the clients read a pipeline's answer for
// lease.wait_timeout longer (it ends with WAIT); Sentinel is accepted and
// Cluster refused, by redis.cluster or by several addresses.
func TestWaitReplicasReadTimeoutAndTopology(t *testing.T) {
	t.Parallel()
	s := Default()
	s.Lease.WaitReplicas, s.Lease.WaitTimeout = 1, 2*time.Second
	s.RedisURL = "redis://127.0.0.1:6390/0?read_timeout=4s"
	require.NoError(t, s.Validate())
	c, err := s.redisClient()
	require.NoError(t, err)
	defer c.Close()
	require.Equal(t, 6*time.Second, c.(*redis.Client).Options().ReadTimeout)

	s.RedisAddrs, s.RedisMaster = []string{"127.0.0.1:26379"}, "mymaster"
	require.NoError(t, s.Validate())
	o, err := s.redisUniversalOptions()
	require.NoError(t, err)
	require.Equal(t, 5*time.Second, o.ReadTimeout, "go-redis's 3s and the wait")

	s.RedisMaster = ""
	require.NoError(t, s.Validate(), "one address without redis.cluster is a single node")
	s.Redis.Cluster = true
	err = s.Validate()
	require.ErrorContains(t, err, "lease.wait_replicas")
	require.ErrorContains(t, err, "Cluster")

	s.Lease.WaitReplicas = 0
	require.NoError(t, s.Validate())
	o, err = s.redisUniversalOptions()
	require.NoError(t, err)
	require.Zero(t, o.ReadTimeout, "without the wait, go-redis's default")
}
