package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"

	"github.com/salvo-run/salvo/internal/childproc"
)

// bins are the paths of the binaries the benchmark runs.
type bins struct {
	natsServer, redisServer, mockupstream, worker, pipeline, asynqbase string
}

func binsIn(dir, redisServer string) bins {
	return bins{
		natsServer:   filepath.Join(dir, "nats-server"),
		redisServer:  redisServer,
		mockupstream: filepath.Join(dir, "mockupstream"),
		worker:       filepath.Join(dir, "worker"),
		pipeline:     filepath.Join(dir, "pipeline"),
		asynqbase:    filepath.Join(dir, "asynqbase"),
	}
}

// infra is one fresh set of backing processes: nats-server (JetStream, file
// store in a temp dir), redis-server (no persistence) and, unless the
// scenario records calls in-process, the mock upstream. All on loopback.
type infra struct {
	p                           *childproc.Set
	nats, redis, mock           *childproc.Child
	natsURL, redisAddr, mockURL string
	dir                         string

	nc  *nats.Conn
	js  jetstream.JetStream
	rdb *redis.Client
}

// startInfra starts the backing processes. mockArgs nil means no mock
// process (the caller serves the upstream itself at upstreamURL).
func startInfra(ctx context.Context, p *childproc.Set, b bins, mockArgs []string, upstreamURL string) (_ *infra, err error) {
	in := &infra{p: p, mockURL: upstreamURL}
	defer func() {
		if err != nil {
			in.stop()
		}
	}()
	if in.dir, err = os.MkdirTemp("", "loadbench-"); err != nil {
		return nil, err
	}
	np, err := childproc.FreePort()
	if err != nil {
		return nil, err
	}
	in.natsURL = "nats://127.0.0.1:" + strconv.Itoa(np)
	if in.nats, err = p.Start("nats-server", nil, b.natsServer, "-a", "127.0.0.1", "-p", strconv.Itoa(np),
		"-js", "-sd", filepath.Join(in.dir, "js")); err != nil {
		return nil, err
	}
	err = childproc.WaitFor(ctx, 20*time.Second, "nats-server ready", in.nats, func(context.Context) error {
		nc, err := nats.Connect(in.natsURL, nats.Name("loadbench"))
		if err == nil {
			in.nc = nc
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	if in.js, err = jetstream.New(in.nc); err != nil {
		return nil, err
	}

	rp, err := childproc.FreePort()
	if err != nil {
		return nil, err
	}
	in.redisAddr = "127.0.0.1:" + strconv.Itoa(rp)
	if in.redis, err = p.Start("redis-server", nil, b.redisServer, "--bind", "127.0.0.1", "--port", strconv.Itoa(rp),
		"--save", "", "--appendonly", "no", "--dir", in.dir, "--maxclients", "16000"); err != nil {
		return nil, err
	}
	in.rdb = redis.NewClient(&redis.Options{Addr: in.redisAddr, PoolSize: 4})
	if err = childproc.WaitFor(ctx, 20*time.Second, "redis-server ready", in.redis, func(ctx context.Context) error {
		return in.rdb.Ping(ctx).Err()
	}); err != nil {
		return nil, err
	}

	if mockArgs != nil {
		mp, err := childproc.FreePort()
		if err != nil {
			return nil, err
		}
		addr := "127.0.0.1:" + strconv.Itoa(mp)
		in.mockURL = "http://" + addr
		if in.mock, err = p.Start("mockupstream", nil, b.mockupstream, append([]string{"-addr", addr}, mockArgs...)...); err != nil {
			return nil, err
		}
		if err = childproc.WaitFor(ctx, 20*time.Second, "mockupstream ready", in.mock, func(ctx context.Context) error {
			c, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
			if err == nil {
				_ = c.Close()
			}
			return err
		}); err != nil {
			return nil, err
		}
	}
	return in, nil
}

func (in *infra) stop() {
	if in.nc != nil {
		in.nc.Close()
	}
	if in.rdb != nil {
		_ = in.rdb.Close()
	}
	for _, c := range []*childproc.Child{in.mock, in.redis, in.nats} {
		if c != nil {
			in.p.Kill(c)
		}
	}
	if in.dir != "" {
		_ = os.RemoveAll(in.dir)
	}
}

// streamMsgs is the number of messages a stream holds (0 when it does not exist).
func (in *infra) streamMsgs(ctx context.Context, name string) (uint64, error) {
	s, err := in.js.Stream(ctx, name)
	if err != nil {
		return 0, fmt.Errorf("stream %s: %w", name, err)
	}
	return s.CachedInfo().State.Msgs, nil // js.Stream has just fetched it
}
