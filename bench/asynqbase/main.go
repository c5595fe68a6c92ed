// Command asynqbase is the asynq baseline of bench/loadbench: a task queue
// in Redis (github.com/hibiken/asynq) whose handler does only the HTTP call
// of the request it carries. It has two modes, each its own process:
//
//	asynqbase -enqueue -n 50000 -redis-addr …   # reads nothing; enqueues n tasks, exits
//	asynqbase -redis-addr … -upstream-url … -concurrency 64
//
// A task's payload is the same request message salvo's worker reads
// (docs/PROTOCOL.md §3); the handler POSTs its body to url on the upstream.
// Completed tasks are counted by asynq itself (asynq:{default}:processed).
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hibiken/asynq"
)

const taskType = "llm:request"

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "asynqbase:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("asynqbase", flag.ContinueOnError)
	var (
		redisAddr   = fs.String("redis-addr", "127.0.0.1:6379", "Redis address")
		upstream    = fs.String("upstream-url", "http://127.0.0.1:8089", "upstream base URL")
		concurrency = fs.Int("concurrency", 64, "asynq server concurrency")
		enqueue     = fs.Bool("enqueue", false, "enqueue -n tasks and exit")
		n           = fs.Int("n", 0, "tasks to enqueue")
		id          = fs.String("id-prefix", "r", "request id prefix of the enqueued tasks")
		model       = fs.String("model", "bench/model:v1", "model of the enqueued tasks")
	)
	if err := fs.Parse(args); err != nil {
		return err
	}
	opt := asynq.RedisClientOpt{Addr: *redisAddr, PoolSize: 64}
	if *enqueue {
		return enqueueTasks(opt, *n, *id, *model)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	client := &http.Client{Transport: &http.Transport{
		MaxIdleConns: *concurrency, MaxIdleConnsPerHost: *concurrency, IdleConnTimeout: 2 * time.Minute,
	}}
	base := strings.TrimRight(*upstream, "/")
	srv := asynq.NewServer(opt, asynq.Config{
		Concurrency:     *concurrency,
		ShutdownTimeout: 2 * time.Second,
		LogLevel:        asynq.WarnLevel,
	})
	mux := asynq.NewServeMux()
	mux.HandleFunc(taskType, func(ctx context.Context, t *asynq.Task) error { return call(ctx, client, base, t.Payload()) })
	if err := srv.Start(mux); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "asynqbase: serving with concurrency %d\n", *concurrency)
	<-ctx.Done()
	srv.Shutdown()
	return nil
}

// request is the part of salvo's request message the handler uses.
type request struct {
	ID     string          `json:"id"`
	Method string          `json:"method"`
	URL    string          `json:"url"`
	Body   json.RawMessage `json:"body"`
}

func call(ctx context.Context, client *http.Client, base string, payload []byte) error {
	var req request
	if err := json.Unmarshal(payload, &req); err != nil {
		return fmt.Errorf("%w: %w", err, asynq.SkipRetry)
	}
	hr, err := http.NewRequestWithContext(ctx, req.Method, base+req.URL, bytes.NewReader(req.Body))
	if err != nil {
		return fmt.Errorf("%w: %w", err, asynq.SkipRetry)
	}
	hr.Header.Set("Content-Type", "application/json")
	hr.Header.Set("X-Request-Id", req.ID)
	resp, err := client.Do(hr)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		return fmt.Errorf("upstream status %d", resp.StatusCode)
	}
	return nil
}

// enqueueTasks enqueues n tasks from 32 goroutines, each carrying a request
// message shaped like the ones bench/loadbench publishes for salvo.
func enqueueTasks(opt asynq.RedisClientOpt, n int, idPrefix, model string) error {
	client := asynq.NewClient(opt)
	defer client.Close()
	const workers = 32
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < n; i += workers {
				id := fmt.Sprintf("%s-%07d", idPrefix, i)
				payload, err := json.Marshal(map[string]any{
					"v": 1, "id": id, "model": model, "method": "POST", "url": "/v1/chat/completions",
					"body": json.RawMessage(fmt.Sprintf(`{"model":%q,"messages":[{"role":"user","content":"question %d"}]}`, model, i)),
				})
				if err == nil {
					_, err = client.Enqueue(asynq.NewTask(taskType, payload), asynq.MaxRetry(3), asynq.Timeout(time.Minute))
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	return <-errs
}
