package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/salvo-run/salvo/internal/gateway"
	"github.com/salvo-run/salvo/internal/testbin"
	"github.com/salvo-run/salvo/internal/testlog"
	"github.com/salvo-run/salvo/internal/testnats"
)

// TestGatewayPeakRSS measures the peak RSS of the gateway (its own
// process, on an embedded nats-server) while a 200 MB JSONL file is
// uploaded through POST /v1/files and while it is downloaded back through
// GET /v1/files/{id}/content; each direction runs on a fresh gateway, whose
// RSS once it answers (idle) is the floor of the same run. Both sides of
// the test stream from and to disk. SALVO_BENCH_GATEWAY_SLOW=1 adds a
// third download by a client reading at 25 MB/s. A recorded run, not part
// of `make test`: run it with `make bench-gateway` (SALVO_BENCH_GATEWAY=1);
// the figures go to docs/BENCHMARKS.md.
func TestGatewayPeakRSS(t *testing.T) {
	if os.Getenv("SALVO_BENCH_GATEWAY") == "" {
		t.Skip("set SALVO_BENCH_GATEWAY=1 (make bench-gateway)")
	}
	const (
		n        = 100_000
		lineSize = 2000 // with its newline: the file is exactly OpenAI's 200 MB
		size     = n * lineSize
	)
	ns := testnats.New(t)
	// The object store holds the file once; the embedded server's store
	// limit is dynamic (most of the free disk), so check it fits.
	js := ns.Server().JetStreamConfig()
	require.NotNil(t, js)
	require.Greater(t, js.MaxStore, int64(2*size), "JetStream max_store of the embedded server")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()

	dir := t.TempDir()
	path := filepath.Join(dir, "big.jsonl")
	inSum := writeInput(t, path, n, lineSize)
	key := "sk-bench-" + hex.EncodeToString(inSum[:6])

	// Upload.
	up := startGateway(ctx, t, ns.URL(), key)
	start := time.Now()
	id := upload(ctx, t, up.url, key, path)
	upWall := time.Since(start)
	upPeak := up.stop(t)
	require.NotContains(t, up.log(), key, "the gateway logged the key")

	// Download, from a fresh gateway.
	down := startGateway(ctx, t, ns.URL(), key)
	start = time.Now()
	outSum, outSize := download(ctx, t, down.url, key, id, filepath.Join(dir, "back.jsonl"), 0)
	downWall := time.Since(start)
	downPeak := down.stop(t)
	require.EqualValues(t, size, outSize, "downloaded bytes")
	require.Equal(t, hex.EncodeToString(inSum), hex.EncodeToString(outSum), "sha256 of the download")

	// Download by a slow client (SALVO_BENCH_GATEWAY_SLOW=1), from a
	// fresh gateway: what the gateway buffers while its writes wait.
	var slowPeak testbin.PeakRSS
	var slowWall time.Duration
	if os.Getenv("SALVO_BENCH_GATEWAY_SLOW") != "" {
		slow := startGateway(ctx, t, ns.URL(), key)
		t.Cleanup(func() {
			if t.Failed() {
				t.Logf("the slow client's gateway's log:\n%s", slow.log())
			}
		})
		start = time.Now()
		outSum, outSize = download(ctx, t, slow.url, key, id, filepath.Join(dir, "slow.jsonl"), slowClientBytesPerSec)
		slowWall = time.Since(start)
		slowPeak = slow.stop(t)
		require.EqualValues(t, size, outSize, "downloaded bytes (slow client)")
		require.Equal(t, hex.EncodeToString(inSum), hex.EncodeToString(outSum), "sha256 of the slow client's download")
	}

	t.Logf("input %d lines, %d bytes (%.1f MB); JetStream max_store %.1f GB", n, size, float64(size)/1e6, float64(js.MaxStore)/1e9)
	t.Logf("gateway idle (upload's):   %s (the floor)", up.floor)
	t.Logf("gateway upload:            %s; %s, %.0f MB/s", upPeak, upWall.Round(time.Millisecond), float64(size)/1e6/upWall.Seconds())
	t.Logf("gateway idle (download's): %s (the floor)", down.floor)
	t.Logf("gateway download:          %s; %s, %.0f MB/s", downPeak, downWall.Round(time.Millisecond), float64(size)/1e6/downWall.Seconds())
	if slowWall > 0 {
		t.Logf("gateway slow download:     %s; %s, %.0f MB/s", slowPeak, slowWall.Round(time.Millisecond), float64(size)/1e6/slowWall.Seconds())
	}
	// The bound: bounded, not proportional to the file.
	require.Less(t, upPeak.HWMKiB, 100*1024, "gateway peak RSS during the upload")
	require.Less(t, downPeak.HWMKiB, 100*1024, "gateway peak RSS during the download")
	require.Less(t, slowPeak.HWMKiB, 100*1024, "gateway peak RSS during the slow client's download")
}

// writeInput writes n request lines of lineSize bytes each (newline
// included) to path and returns the file's sha256.
func writeInput(t *testing.T, path string, n, lineSize int) []byte {
	t.Helper()
	f, err := os.Create(path)
	require.NoError(t, err)
	h := sha256.New()
	w := bufio.NewWriterSize(io.MultiWriter(f, h), 1<<20)
	for i := 1; i <= n; i++ {
		head := fmt.Sprintf(`{"custom_id":"row-%d","method":"POST","url":"/v1/chat/completions","body":{"model":"gpt-4o-mini","messages":[{"role":"user","content":"`, i)
		tail := `"}]}}`
		_, err := fmt.Fprint(w, head, strings.Repeat("x", lineSize-1-len(head)-len(tail)), tail, "\n")
		require.NoError(t, err)
	}
	require.NoError(t, w.Flush())
	require.NoError(t, f.Close())
	return h.Sum(nil)
}

// upload posts path as a batch file, streamed: a multipart.Writer writes
// the form into a pipe the request reads, the file copied from disk.
func upload(ctx context.Context, t *testing.T, baseURL, key, path string) string {
	t.Helper()
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	written := make(chan error, 1)
	go func() {
		err := func() error {
			if err := mw.WriteField("purpose", "batch"); err != nil {
				return err
			}
			part, err := mw.CreateFormFile("file", filepath.Base(path))
			if err != nil {
				return err
			}
			f, err := os.Open(path)
			if err != nil {
				return err
			}
			defer f.Close()
			if _, err := io.Copy(part, f); err != nil {
				return err
			}
			return mw.Close()
		}()
		_ = pw.CloseWithError(err) // nil closes with io.EOF
		written <- err
	}()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, baseURL+"/v1/files", pr)
	require.NoError(t, err)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	_ = pr.Close() // unblocks the writer if the gateway answered early
	require.NoError(t, err)
	defer resp.Body.Close()
	require.NoError(t, <-written)
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", body)
	var f struct {
		ID      string `json:"id"`
		Bytes   int64  `json:"bytes"`
		Purpose string `json:"purpose"`
	}
	require.NoError(t, json.Unmarshal(body, &f))
	st, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, st.Size(), f.Bytes, "the file object's bytes")
	require.Equal(t, "batch", f.Purpose)
	return f.ID
}

// slowClientBytesPerSec is the slow client's reading rate: 200 MB in
// about 8 s.
const slowClientBytesPerSec = 25_000_000

// download streams the file's content to path and returns its sha256 and
// size; bytesPerSec > 0 paces the reading to that rate.
func download(ctx context.Context, t *testing.T, baseURL, key, id, path string, bytesPerSec int) ([]byte, int64) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, baseURL+"/v1/files/"+id+"/content", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	f, err := os.Create(path)
	require.NoError(t, err)
	defer f.Close()
	h := sha256.New()
	var body io.Reader = resp.Body
	if bytesPerSec > 0 {
		body = &pacedReader{ctx: ctx, r: resp.Body, perSec: bytesPerSec, start: time.Now()}
	}
	n, err := io.Copy(io.MultiWriter(f, h), body)
	require.NoError(t, err)
	return h.Sum(nil), n
}

// pacedReader reads no faster than perSec bytes a second on average.
type pacedReader struct {
	ctx    context.Context
	r      io.Reader
	perSec int
	start  time.Time
	read   int64
}

func (p *pacedReader) Read(b []byte) (int, error) {
	if ahead := time.Duration(float64(p.read)/float64(p.perSec)*float64(time.Second)) - time.Since(p.start); ahead > 0 {
		timer := time.NewTimer(ahead)
		select {
		case <-p.ctx.Done():
			timer.Stop()
			return 0, p.ctx.Err()
		case <-timer.C:
		}
	}
	n, err := p.r.Read(b[:min(len(b), 64<<10)])
	p.read += int64(n)
	return n, err
}

// gatewayProc is a cmd/gateway process whose RSS is being sampled.
type gatewayProc struct {
	cmd    *exec.Cmd
	url    string
	out    *testlog.Buffer
	floor  testbin.PeakRSS
	halt   chan struct{}
	polled chan testbin.PeakRSS
}

// startGateway runs the gateway binary on a free loopback port, waits
// until it answers an authenticated call and reads its idle RSS (the
// floor); sampling goes on until stop.
func startGateway(ctx context.Context, t *testing.T, natsURL, key string) *gatewayProc {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	g := &gatewayProc{url: "http://" + addr, out: &testlog.Buffer{}, halt: make(chan struct{}), polled: make(chan testbin.PeakRSS, 1)}
	g.cmd = exec.CommandContext(ctx, testbin.Gateway(t), "-addr", addr, "-nats-url", natsURL)
	// Only SALVO_GATEWAY_KEYS of salvo's variables: nothing of the test's
	// own environment configures the gateway.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SALVO_") {
			g.cmd.Env = append(g.cmd.Env, kv)
		}
	}
	g.cmd.Env = append(g.cmd.Env, "SALVO_GATEWAY_KEYS="+gateway.HashKey(key)+"=bench")
	g.cmd.Stdout, g.cmd.Stderr = g.out, g.out
	require.NoError(t, g.cmd.Start())
	t.Cleanup(func() {
		if g.cmd.ProcessState == nil {
			_ = g.cmd.Process.Kill()
			_ = g.cmd.Wait()
		}
	})
	pid := g.cmd.Process.Pid
	go func() { g.polled <- testbin.PollRSS(pid, g.halt) }()
	require.Eventually(t, func() bool {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, g.url+"/v1/files?limit=1", nil)
		if err != nil {
			return false
		}
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 30*time.Second, 20*time.Millisecond, "the gateway never answered:\n%s", g.out)
	g.floor, err = testbin.RSS(pid)
	require.NoError(t, err)
	return g
}

// stop ends the sampling, then the gateway (SIGTERM, its graceful
// shutdown), and returns the peak sampled.
func (g *gatewayProc) stop(t *testing.T) testbin.PeakRSS {
	t.Helper()
	close(g.halt)
	peak := <-g.polled
	require.NoError(t, g.cmd.Process.Signal(syscall.SIGTERM))
	require.NoError(t, g.cmd.Wait(), "%s", g.out)
	return peak
}

func (g *gatewayProc) log() string { return g.out.String() }
