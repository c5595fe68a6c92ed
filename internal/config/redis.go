package config

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/salvo-run/salvo/internal/connauth"
	"github.com/salvo-run/salvo/pkg/lifecycle"
)

// RedisConn authenticates and secures the connections to Redis, whichever
// client redis_url or redis_addrs selects (single node, Sentinel,
// Cluster). Each password can be given as its value (best from its
// SALVO_ variable) or as a file holding it (…_file), never both.
type RedisConn struct {
	// Username is the ACL user (Redis 6+); empty is the default user.
	Username string `yaml:"username"`
	// Password is the password of the ACL user (or of the default user);
	// never logged. Prefer `redis.password_file` or the
	// SALVO_REDIS_PASSWORD variable to a password in the file.
	Password lifecycle.Secret `yaml:"password"`
	// PasswordFile names a file holding the password (a mounted secret),
	// trailing newline trimmed; it excludes `redis.password`.
	PasswordFile string `yaml:"password_file"`
	// SentinelUsername is the ACL user to authenticate to the Sentinels
	// (redis_master set) with; the master and replicas take
	// `redis.username`.
	SentinelUsername string `yaml:"sentinel_username"`
	// SentinelPassword is the password of the Sentinels (redis_master
	// set) when they require one, never logged; the master and replicas
	// take `redis.password`.
	SentinelPassword lifecycle.Secret `yaml:"sentinel_password"`
	// SentinelPasswordFile names a file holding the Sentinels' password,
	// trailing newline trimmed; it excludes `redis.sentinel_password`.
	SentinelPasswordFile string `yaml:"sentinel_password_file"`
	// Cluster makes one address in redis_addrs a Cluster (a configuration
	// endpoint); two or more addresses without redis_master are one anyway.
	Cluster bool `yaml:"cluster"`
	// TLS turns TLS on for every connection (also a rediss:// redis_url)
	// and names the CA and the client certificate.
	TLS connauth.TLS `yaml:"tls"`
}

// redisAuth is RedisConn with the secrets and TLS files read.
type redisAuth struct {
	username, sentinelUsername string
	password, sentinelPassword lifecycle.Secret
	tls                        *tls.Config
}

// validateRedis checks the Redis keys together, reading no file.
func (s Settings) validateRedis() error {
	r := s.Redis
	if len(s.RedisAddrs) == 0 {
		opt, err := redis.ParseURL(s.RedisURL)
		if err != nil {
			// The parser's error quotes the URL, password included: say
			// only what is wrong.
			return keyError("redis_url", nil, "not a valid redis:// or rediss:// URL (value not shown: it may hold a password)")
		}
		switch {
		case opt.Password != "" && (r.Password != "" || r.PasswordFile != ""):
			return keyError("redis.password", nil, "redis_url holds a password already: give it in one place")
		case opt.Username != "" && r.Username != "":
			return keyError("redis.username", nil, "redis_url holds a user name already: give it in one place")
		case r.Cluster:
			return keyError("redis.cluster", nil, "needs redis_addrs (a Cluster's nodes or configuration endpoint), not redis_url")
		}
	}
	switch {
	case r.Password != "" && r.PasswordFile != "":
		return keyError("redis.password_file", nil, "set redis.password or redis.password_file, not both")
	case r.SentinelPassword != "" && r.SentinelPasswordFile != "":
		return keyError("redis.sentinel_password_file", nil, "set redis.sentinel_password or redis.sentinel_password_file, not both")
	case r.Username != "" && r.Password == "" && r.PasswordFile == "":
		return keyError("redis.username", nil, "needs redis.password or redis.password_file")
	case r.SentinelUsername != "" && r.SentinelPassword == "" && r.SentinelPasswordFile == "":
		return keyError("redis.sentinel_username", nil, "needs redis.sentinel_password or redis.sentinel_password_file")
	case s.RedisMaster == "" && (r.SentinelUsername != "" || r.SentinelPassword != "" || r.SentinelPasswordFile != ""):
		return keyError("redis.sentinel_password", nil, "is for Sentinel: set redis_master and redis_addrs")
	case s.RedisMaster != "" && r.Cluster:
		return keyError("redis.cluster", nil, "and redis_master (Sentinel) are two topologies: set one")
	case s.RedisMaster != "" && len(s.RedisAddrs) == 0:
		return keyError("redis_master", nil, "needs redis_addrs (the Sentinels)")
	case s.Lease.WaitReplicas > 0 && s.redisCluster():
		// WAIT has no key: go-redis splits a pipeline per node and would
		// send it to any one of them.
		return keyError("lease.wait_replicas", nil,
			"%d is not supported with Redis Cluster (redis_addrs without redis_master): WAIT confirms one node's writes; use it with Sentinel or a single primary",
			s.Lease.WaitReplicas)
	}
	return inSection("redis.tls", r.TLS.Validate())
}

// redisCluster reports whether the settings select a Cluster client: what
// redis.NewUniversalClient makes of redis_addrs.
func (s Settings) redisCluster() bool {
	return len(s.RedisAddrs) > 0 && s.RedisMaster == "" && (s.Redis.Cluster || len(s.RedisAddrs) > 1)
}

// redisReadTimeout is the client's socket read timeout given the one it
// would have (0: go-redis's 3 s default, negative: none): that, plus
// lease.wait_timeout when the store ends its pipelines with WAIT, whose
// answer comes only after the wait. A pipeline reads under the client's
// timeout, not its commands' own.
func (s Settings) redisReadTimeout(base time.Duration) time.Duration {
	c := s.StateConfig()
	switch {
	case c.WaitReplicas == 0 || base < 0:
		return base
	case base == 0:
		base = 3 * time.Second // go-redis's default
	}
	return base + c.WaitTimeout
}

// redisAuth reads the secrets and TLS files. Errors name the key, never
// the secret.
func (r RedisConn) resolve() (redisAuth, error) {
	a := redisAuth{username: r.Username, sentinelUsername: r.SentinelUsername}
	var err error
	if a.password, err = connauth.Secret(r.Password, r.PasswordFile, "password", "password_file"); err != nil {
		return a, inSection("redis", err)
	}
	if a.sentinelPassword, err = connauth.Secret(r.SentinelPassword, r.SentinelPasswordFile,
		"sentinel_password", "sentinel_password_file"); err != nil {
		return a, inSection("redis", err)
	}
	if a.tls, err = r.TLS.Config(); err != nil {
		return a, inSection("redis.tls", err)
	}
	return a, nil
}

// redisClient is the client the settings describe: a single node from
// redis_url, or Sentinel / Cluster from redis_addrs, each authenticated
// and secured by the redis.* keys. Validate has checked the keys.
func (s Settings) redisClient() (redis.UniversalClient, error) {
	if len(s.RedisAddrs) > 0 {
		o, err := s.redisUniversalOptions()
		if err != nil {
			return nil, err
		}
		return redis.NewUniversalClient(o), nil
	}
	a, err := s.Redis.resolve()
	if err != nil {
		return nil, err
	}
	opt, err := redis.ParseURL(s.RedisURL)
	if err != nil {
		return nil, keyError("redis_url", nil, "not a valid redis:// or rediss:// URL (value not shown: it may hold a password)")
	}
	// ContextTimeoutEnabled: the worker bounds every call with a context
	// deadline (OpTimeout); without it go-redis waits for its own socket
	// timeouts instead.
	opt.ContextTimeoutEnabled = true
	opt.ReadTimeout = s.redisReadTimeout(opt.ReadTimeout)
	if a.username != "" {
		opt.Username = a.username
	}
	if a.password != "" {
		opt.Password = a.password.Reveal()
	}
	if a.tls != nil {
		// An empty ServerName is the dialled host (crypto/tls).
		opt.TLSConfig = a.tls
	}
	return redis.NewClient(opt), nil
}

// redisUniversalOptions are the Sentinel or Cluster client's options.
func (s Settings) redisUniversalOptions() (*redis.UniversalOptions, error) {
	a, err := s.Redis.resolve()
	if err != nil {
		return nil, err
	}
	// An empty ServerName is each node's dialled host (go-redis dials with
	// crypto/tls's DialWithDialer).
	return &redis.UniversalOptions{
		Addrs: s.RedisAddrs, MasterName: s.RedisMaster, IsClusterMode: s.Redis.Cluster,
		Username: a.username, Password: a.password.Reveal(),
		SentinelUsername: a.sentinelUsername, SentinelPassword: a.sentinelPassword.Reveal(),
		TLSConfig: a.tls, ContextTimeoutEnabled: true, ReadTimeout: s.redisReadTimeout(0),
	}, nil
}

// redisError says which settings a failed first PING points at; the
// server's words (WRONGPASS, NOAUTH) name what it refused.
func (s Settings) redisError(ctx context.Context, err error) error {
	var keys []string
	switch field := connauth.TLSBlame(err); {
	case field == "enabled":
		keys = s.redisTLSOnKeys()
	case field != "":
		keys = []string{"redis.tls." + field}
	case s.redisTLSOn() && isTimeout(err):
		// A plain-text Redis reads the TLS ClientHello as the start of an
		// inline command and waits for the rest: the handshake times out
		// (or, when the hello holds a line break, the server's error
		// reply is no TLS record: "enabled" above).
		keys = s.redisTLSOnKeys()
		if !s.rediss() {
			keys = append(keys, s.redisAddrKey())
		}
	case redis.IsAuthError(err) && s.sentinelRefuses(ctx):
		keys = []string{"redis.sentinel_password", "redis.sentinel_username"}
	case redis.IsAuthError(err):
		keys = []string{"redis.password", "redis.username"}
		if len(s.RedisAddrs) == 0 {
			keys = append(keys, "redis_url")
		}
	case errors.Is(err, io.EOF), errors.Is(err, syscall.ECONNRESET):
		// A TLS server drops a plain-text client without a word.
		keys = []string{"redis.tls.enabled"}
	default:
		keys = []string{s.redisAddrKey()}
	}
	return fmt.Errorf("redis: ping %s: %w (check %s)", s.redisTarget(), err, namesOf(keys))
}

// sentinelRefuses reports whether a Sentinel refuses the Sentinel
// credentials. go-redis reports a Sentinel's refusal and the master's
// alike (an auth error, from every Sentinel "unreachable"), so after an
// auth error each Sentinel is asked directly, within one PING timeout.
func (s Settings) sentinelRefuses(ctx context.Context) bool {
	if s.RedisMaster == "" {
		return false
	}
	o, err := s.redisUniversalOptions()
	if err != nil {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, redisPingTimeout)
	defer cancel()
	for _, addr := range s.RedisAddrs {
		c := redis.NewSentinelClient(&redis.Options{
			Addr: addr, Username: o.SentinelUsername, Password: o.SentinelPassword,
			TLSConfig: o.TLSConfig, ContextTimeoutEnabled: true, MaxRetries: -1,
		})
		err := c.Ping(ctx).Err()
		_ = c.Close()
		if redis.IsAuthError(err) {
			return true
		}
	}
	return false
}

// usesTLS reports whether client dials with TLS, from its own options:
// what the settings made of redis.tls and redis_url.
func usesTLS(client redis.UniversalClient) bool {
	switch c := client.(type) {
	case *redis.Client: // single node, and Sentinel's master client
		return c.Options().TLSConfig != nil
	case *redis.ClusterClient:
		return c.Options().TLSConfig != nil
	}
	return false
}

// redisTLSOn reports whether the settings turn TLS on for the client in
// use.
func (s Settings) redisTLSOn() bool { return s.Redis.TLS.On() || s.rediss() }

// redisTLSOnKeys are the settings that turned TLS on.
func (s Settings) redisTLSOnKeys() []string {
	keys := []string{"redis.tls.enabled"}
	if s.rediss() {
		keys = append(keys, "redis_url")
	}
	return keys
}

// isTimeout reports whether err is a deadline: the context's or the
// socket's.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}

// rediss reports whether the client in use is redis_url's, a rediss://.
func (s Settings) rediss() bool {
	return len(s.RedisAddrs) == 0 && strings.HasPrefix(s.RedisURL, "rediss:")
}

func (s Settings) redisAddrKey() string {
	if len(s.RedisAddrs) > 0 {
		return "redis_addrs"
	}
	return "redis_url"
}

// redisTarget names the server without its password.
func (s Settings) redisTarget() string {
	if len(s.RedisAddrs) > 0 {
		return fmt.Sprint(s.RedisAddrs)
	}
	opt, err := redis.ParseURL(s.RedisURL)
	if err != nil {
		return "redis_url"
	}
	return opt.Addr
}
