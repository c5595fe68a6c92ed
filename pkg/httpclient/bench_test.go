package httpclient_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/salvo-run/salvo/internal/mockupstream"
	"github.com/salvo-run/salvo/internal/testupstream"
	"github.com/salvo-run/salvo/pkg/httpclient"
	"github.com/salvo-run/salvo/pkg/lifecycle"
)

// BenchmarkDo measures upstream calls to the in-process mock (no latency)
// from H goroutines, one op per call:
//
//   - salvo: Client.Do on a plain JSON answer;
//   - salvo-sse: Client.Do on a streamed answer ("stream": true, 12 words,
//     reassembled into the final JSON);
//   - net-http: the baseline, a bare net/http client tuned like ours
//     (keep-alive, a large idle pool) posting the same body and reading
//     the answer.
//
// salvo / net-http is the price of routing, phase watchdogs, header building
// and classification. It reports req/s and the CPU time of the process per
// call (client and mock server together).
func BenchmarkDo(b *testing.B) {
	for _, h := range []int{64, 256} {
		for _, kind := range []string{"net-http", "salvo", "salvo-sse"} {
			b.Run(kind+"/handlers="+strconv.Itoa(h), func(b *testing.B) { benchDo(b, kind, h) })
		}
	}
}

func benchDo(b *testing.B, kind string, handlers int) {
	mock := testupstream.New(b, mockupstream.Options{})
	reqs := benchRequests(b.N, kind == "salvo-sse")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute+time.Duration(b.N)*5*time.Millisecond)
	defer cancel()
	var call func(r *lifecycle.Request) error
	switch kind {
	case "net-http":
		tr := &http.Transport{MaxIdleConnsPerHost: httpclient.IdleConnsPerHostDefault, ForceAttemptHTTP2: true}
		defer tr.CloseIdleConnections()
		hc := &http.Client{Transport: tr}
		call = func(r *lifecycle.Request) error { return bareCall(ctx, hc, mock.URL(), r) }
	default:
		up, err := httpclient.New(httpclient.Config{Default: &httpclient.Route{BaseURL: mock.URL()}}.WithDefaults(), zerolog.Nop())
		if err != nil {
			b.Fatal(err)
		}
		defer up.Close()
		call = func(r *lifecycle.Request) error {
			resp := up.Do(ctx, r, httpclient.Call{})
			if resp.Failure != nil {
				return fmt.Errorf("%s: %s", resp.Failure.Code, resp.Failure.Message)
			}
			if !bytes.Contains(resp.Body, []byte(`"chat.completion"`)) {
				return fmt.Errorf("not a reassembled completion: %.80s", resp.Body)
			}
			return nil
		}
	}
	var next, failed atomic.Int64
	cpu := procCPU()
	b.ResetTimer()
	var wg sync.WaitGroup
	for range handlers {
		wg.Go(func() {
			for i := next.Add(1) - 1; i < int64(len(reqs)); i = next.Add(1) - 1 {
				if err := call(reqs[i]); err != nil {
					if failed.Add(1) == 1 {
						b.Errorf("call %d: %v", i, err)
					}
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	if s := b.Elapsed().Seconds(); s > 0 {
		b.ReportMetric(float64(b.N)/s, "req/s")
	}
	b.ReportMetric(float64((procCPU()-cpu).Microseconds())/float64(b.N), "cpu-us/req")
	if failed.Load() != 0 || mock.Calls() != int64(b.N) {
		b.Fatalf("%d failed calls, %d upstream calls; want 0 and %d", failed.Load(), mock.Calls(), b.N)
	}
}

// bareCall posts r's body the way a minimal client would.
func bareCall(ctx context.Context, hc *http.Client, base string, r *lifecycle.Request) error {
	req, err := http.NewRequestWithContext(ctx, r.Method, base+r.URL, bytes.NewReader(r.Body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Request-Id", r.ID)
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK || !bytes.Contains(body, []byte(`"chat.completion"`)) {
		return fmt.Errorf("status %d: %.80s", resp.StatusCode, body)
	}
	return nil
}

func benchRequests(n int, stream bool) []*lifecycle.Request {
	const model = "bench-model"
	expires := time.Now().Add(time.Hour).UTC()
	reqs := make([]*lifecycle.Request, n)
	for i := range reqs {
		body := fmt.Sprintf(`{"model":%q,"messages":[{"role":"user","content":"question %d"}]}`, model, i)
		if stream {
			body = fmt.Sprintf(`{"model":%q,"stream":true,"messages":[{"role":"user","content":"question %d"}]}`, model, i)
		}
		reqs[i] = &lifecycle.Request{
			V: lifecycle.WireVersion, ID: fmt.Sprintf("r%06d", i), BatchID: "b-bench", CustomID: fmt.Sprintf("task-%d", i),
			Model: model, Method: http.MethodPost, URL: "/v1/chat/completions", Body: []byte(body), ExpiresAt: expires,
		}
	}
	return reqs
}

// procCPU is the user+system CPU time of this process so far.
func procCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
