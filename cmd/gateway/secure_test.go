package main

import (
	"context"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/salvo-run/salvo/internal/gateway"
	"github.com/salvo-run/salvo/internal/testbin"
	"github.com/salvo-run/salvo/internal/testlog"
	"github.com/salvo-run/salvo/internal/testnats"
	"github.com/salvo-run/salvo/internal/testtls"
)

// gatewayCmd is the gateway binary with env as its only NATS_ and SALVO_
// variables.
func gatewayCmd(ctx context.Context, t *testing.T, env map[string]string, args ...string) (*exec.Cmd, *testlog.Buffer) {
	t.Helper()
	cmd := exec.CommandContext(ctx, testbin.Gateway(t), args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SALVO_") && !strings.HasPrefix(kv, "NATS_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out := &testlog.Buffer{}
	cmd.Stdout, cmd.Stderr = out, out
	return cmd, out
}

// The gateway takes the nats CLI's variables: with a credentials file and
// a client certificate it serves on a nats-server requiring both; with
// another operator's creds it exits naming the flag and variable to check.
func TestGatewayConnectsWithCredsOverMutualTLS(t *testing.T) {
	t.Parallel()
	files := testtls.New(t)
	op := testnats.NewOperator(t)
	ns := testnats.New(t, testnats.WithTLS(files.ServerConfig(t)), op.Option())
	env := map[string]string{
		"NATS_URL": ns.URL(), "NATS_CREDS": op.Creds(t),
		"NATS_CA": files.CA, "NATS_CERT": files.ClientCert, "NATS_KEY": files.ClientKey,
		"SALVO_GATEWAY_KEYS": gateway.HashKey("sk-secure-test") + "=t",
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())

	cmd, out := gatewayCmd(ctx, t, env, "-addr", addr)
	require.NoError(t, cmd.Start())
	exited := make(chan struct{})
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill() // an error once it has exited
		<-exited
	})
	answered := false
	require.Eventually(t, func() bool {
		select {
		case <-exited:
			return true // it will not answer: fail below
		default:
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
		if err != nil {
			return false
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false
		}
		_ = resp.Body.Close()
		answered = resp.StatusCode == http.StatusOK
		return answered
	}, 60*time.Second, 20*time.Millisecond, "the gateway never answered:\n%s", out)
	require.True(t, answered, "the gateway exited:\n%s", out)
	require.Contains(t, out.String(), "gateway serving")
	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	<-exited
	require.NoError(t, waitErr, "%s", out)

	env["NATS_CREDS"] = testnats.NewOperator(t).Creds(t)
	cmd, out = gatewayCmd(ctx, t, env, "-addr", addr)
	require.Error(t, cmd.Run(), "a refused connection ends the gateway")
	require.Contains(t, out.String(), "gateway: nats: connect to "+ns.URL()+": nats: Authorization Violation (check --creds (SALVO_GATEWAY_CREDS or NATS_CREDS))")
}
