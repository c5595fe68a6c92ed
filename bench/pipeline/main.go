// Command pipeline is the minimal request pipeline that bench/loadbench
// measures salvo's worker against. It is written for the benchmark only and
// does the least a durable pipeline of the same shape must do per request:
//
//	JetStream pull consumer → claim (one Lua script: state, lease, fence)
//	→ HTTP POST to the upstream → complete (one Lua script: state, status)
//	→ publish the result to the results stream and wait for its PubAck → ack
//
// with -handlers goroutines. It reads the same request messages as salvo's
// worker (docs/PROTOCOL.md §3) from the same subjects and streams, and
// publishes one result per request on <prefix>.res.<batchtoken>. It has no
// retries, batches, cancels, limits or discovery.
//
//	pipeline -setup -nats-url nats://127.0.0.1:4222       # create the streams, exit
//	pipeline -nats-url … -redis-addr … -upstream-url … -handlers 64
package main

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"
)

var (
	//go:embed claim.lua
	claimSrc    string
	claimScript = redis.NewScript(claimSrc)
	//go:embed complete.lua
	completeSrc    string
	completeScript = redis.NewScript(completeSrc)
)

// leaseTTL is the lease the claim records; nothing renews or sweeps it here.
const leaseTTL = 30 * time.Second

func main() {
	if err := run(os.Args[1:], os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "pipeline:", err)
		os.Exit(1)
	}
}

type options struct {
	natsURL, redisAddr, upstream, prefix string
	handlers                             int
	setup                                bool
}

func run(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("pipeline", flag.ContinueOnError)
	var o options
	fs.StringVar(&o.natsURL, "nats-url", nats.DefaultURL, "NATS server URL")
	fs.StringVar(&o.redisAddr, "redis-addr", "127.0.0.1:6379", "Redis address")
	fs.StringVar(&o.upstream, "upstream-url", "http://127.0.0.1:8089", "upstream base URL")
	fs.StringVar(&o.prefix, "prefix", "salvo", "subject prefix (streams are its upper case + _REQUESTS, _RESULTS)")
	fs.IntVar(&o.handlers, "handlers", 64, "handler goroutines")
	fs.BoolVar(&o.setup, "setup", false, "create the streams and exit")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if o.handlers < 1 {
		return fmt.Errorf("-handlers %d: want at least 1", o.handlers)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	nc, err := nats.Connect(o.natsURL, nats.Name("bench-pipeline"))
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	upper := strings.ToUpper(o.prefix)
	if o.setup {
		return setupStreams(ctx, js, o.prefix, upper)
	}
	// A pool of up to 128 connections: go-redis pipelines nothing here, and
	// 10,000 handlers must not open 10,000 connections (redis maxclients).
	rdb := redis.NewClient(&redis.Options{Addr: o.redisAddr, PoolSize: min(o.handlers, 128)})
	defer rdb.Close()
	if err := rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redis: %w", err)
	}
	cons, err := js.CreateOrUpdateConsumer(ctx, upper+"_REQUESTS", jetstream.ConsumerConfig{
		Durable:       "pipeline",
		FilterSubject: o.prefix + ".req.>",
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       time.Minute,
		MaxAckPending: max(20000, 2*o.handlers),
	})
	if err != nil {
		return fmt.Errorf("consumer: %w", err)
	}
	p := &pipeline{
		js: js, rdb: rdb, upstream: strings.TrimRight(o.upstream, "/"), prefix: o.prefix,
		owner: "pipeline-" + strconv.Itoa(os.Getpid()),
		http: &http.Client{Transport: &http.Transport{
			MaxIdleConns: o.handlers, MaxIdleConnsPerHost: o.handlers, IdleConnTimeout: 2 * time.Minute,
		}},
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(min(2*o.handlers, 1000)))
	if err != nil {
		return err
	}
	work := make(chan jetstream.Msg, o.handlers)
	var wg sync.WaitGroup
	for range o.handlers {
		wg.Go(func() {
			for msg := range work {
				if err := p.handle(ctx, msg); err != nil && ctx.Err() == nil {
					fmt.Fprintln(stderr, "pipeline:", err)
					_ = msg.Nak()
				}
			}
		})
	}
	go func() {
		<-ctx.Done()
		it.Stop()
	}()
	fmt.Fprintf(stderr, "pipeline: consuming with %d handlers\n", o.handlers)
	for {
		msg, err := it.Next()
		if err != nil {
			break
		}
		work <- msg
	}
	close(work)
	wg.Wait()
	return nil
}

// setupStreams creates the request and result streams with salvo's
// default settings (file storage, work-queue requests, 2 min duplicate window).
func setupStreams(ctx context.Context, js jetstream.JetStream, prefix, upper string) error {
	for _, cfg := range []jetstream.StreamConfig{
		{Name: upper + "_REQUESTS", Subjects: []string{prefix + ".req.>"}, Retention: jetstream.WorkQueuePolicy,
			Discard: jetstream.DiscardNew, Storage: jetstream.FileStorage, Duplicates: 2 * time.Minute},
		{Name: upper + "_RESULTS", Subjects: []string{prefix + ".res.>"}, Retention: jetstream.LimitsPolicy,
			Storage: jetstream.FileStorage, Duplicates: 2 * time.Minute},
	} {
		if _, err := js.CreateOrUpdateStream(ctx, cfg); err != nil {
			return fmt.Errorf("stream %s: %w", cfg.Name, err)
		}
	}
	return nil
}

type pipeline struct {
	js       jetstream.JetStream
	rdb      *redis.Client
	http     *http.Client
	upstream string
	prefix   string
	owner    string
}

// request is the part of salvo's request message the pipeline uses.
type request struct {
	ID      string          `json:"id"`
	BatchID string          `json:"batch_id"`
	Method  string          `json:"method"`
	URL     string          `json:"url"`
	Body    json.RawMessage `json:"body"`
}

type result struct {
	V        int            `json:"v"`
	ID       string         `json:"id"`
	BatchID  string         `json:"batch_id,omitempty"`
	State    string         `json:"state"`
	Response resultResponse `json:"response"`
}

type resultResponse struct {
	StatusCode int             `json:"status_code"`
	Body       json.RawMessage `json:"body,omitempty"`
}

var errUnknownState = errors.New("lease lost")

func (p *pipeline) handle(ctx context.Context, msg jetstream.Msg) error {
	var req request
	if err := json.Unmarshal(msg.Data(), &req); err != nil {
		return msg.Term()
	}
	key := "bench:{" + req.ID + "}:req"
	now := time.Now()
	fence, err := claimScript.Run(ctx, p.rdb, []string{key}, p.owner, now.Add(leaseTTL).UnixMilli(), now.UnixMilli()).Int64()
	if err != nil {
		return fmt.Errorf("claim %s: %w", req.ID, err)
	}
	if fence == 0 {
		return msg.Ack() // ended before
	}
	status, body, err := p.call(ctx, &req)
	if err != nil {
		return err
	}
	ok, err := completeScript.Run(ctx, p.rdb, []string{key}, fence, status, time.Now().UnixMilli()).Int64()
	if err != nil {
		return fmt.Errorf("complete %s: %w", req.ID, err)
	}
	if ok == 0 {
		return errUnknownState
	}
	line, err := json.Marshal(result{V: 1, ID: req.ID, BatchID: req.BatchID, State: "completed",
		Response: resultResponse{StatusCode: status, Body: body}})
	if err != nil {
		return err
	}
	token := "_"
	if req.BatchID != "" {
		token = req.BatchID // the benchmark's batch ids need no escaping
	}
	out := nats.NewMsg(p.prefix + ".res." + token)
	out.Header.Set(jetstream.MsgIDHeader, token+"."+req.ID)
	out.Data = line
	if _, err := p.js.PublishMsg(ctx, out); err != nil {
		return fmt.Errorf("publish result %s: %w", req.ID, err)
	}
	return msg.Ack()
}

func (p *pipeline) call(ctx context.Context, req *request) (int, json.RawMessage, error) {
	hr, err := http.NewRequestWithContext(ctx, req.Method, p.upstream+req.URL, bytes.NewReader(req.Body))
	if err != nil {
		return 0, nil, err
	}
	hr.Header.Set("Content-Type", "application/json")
	hr.Header.Set("X-Request-Id", req.ID)
	resp, err := p.http.Do(hr)
	if err != nil {
		return 0, nil, fmt.Errorf("upstream %s: %w", req.ID, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, nil, fmt.Errorf("upstream %s: %w", req.ID, err)
	}
	if !json.Valid(body) {
		body = nil
	}
	return resp.StatusCode, body, nil
}
