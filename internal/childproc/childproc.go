// Package childproc starts the processes of the multi-process harnesses
// (bench/loadbench, bench/chaos) — nats-server, redis-server, the mock
// upstream, workers — each in its own process group, and makes sure every
// one of them dies at the end, whatever path the harness takes out.
package childproc

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// Child is one process a Set started, in its own process group so that
// Kill reaches everything it forked.
type Child struct {
	Name string
	Cmd  *exec.Cmd
	// Done is closed when the process has exited; Err is then its exit error.
	Done chan struct{}
	Err  error
}

// Set tracks every child process so that all of them die at the end.
type Set struct {
	// Ctx is the run's context: it bounds every child (its end kills what
	// is left).
	Ctx context.Context
	// Logs receives the children's stdout and stderr.
	Logs io.Writer

	mu       sync.Mutex
	children []*Child
}

// Start starts path with args and the current environment plus env.
func (p *Set) Start(name string, env []string, path string, args ...string) (*Child, error) {
	// The whole run's context: each child is killed by Kill or KillAll
	// before that ends; its end kills what is left.
	cmd := exec.CommandContext(p.Ctx, path, args...)
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout = p.Logs
	cmd.Stderr = p.Logs
	// Own process group, and SIGKILL if the harness itself dies.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	c := &Child{Name: name, Cmd: cmd, Done: make(chan struct{})}
	go func() {
		c.Err = cmd.Wait()
		close(c.Done)
	}()
	p.mu.Lock()
	p.children = append(p.children, c)
	p.mu.Unlock()
	return c, nil
}

// Run starts a short-lived child and waits for it to exit successfully.
func (p *Set) Run(ctx context.Context, name string, env []string, path string, args ...string) error {
	c, err := p.Start(name, env, path, args...)
	if err != nil {
		return err
	}
	select {
	case <-c.Done:
		p.forget(c)
		if c.Err != nil {
			return fmt.Errorf("%s: %w", name, c.Err)
		}
		return nil
	case <-ctx.Done():
		p.Kill(c)
		return fmt.Errorf("%s: %w", name, ctx.Err())
	}
}

// PID is the child's process id.
func (c *Child) PID() int { return c.Cmd.Process.Pid }

// Exited reports whether the child has exited, with its error.
func (c *Child) Exited() (bool, error) {
	select {
	case <-c.Done:
		if c.Err == nil {
			return true, fmt.Errorf("%s exited", c.Name)
		}
		return true, fmt.Errorf("%s exited: %w", c.Name, c.Err)
	default:
		return false, nil
	}
}

// Kill SIGKILLs the child's process group and waits for the child.
func (p *Set) Kill(c *Child) { p.Stop(c, syscall.SIGKILL) }

// Stop sends sig to the child's process group and waits (up to 10 s, then
// SIGKILL) for the child to exit.
func (p *Set) Stop(c *Child, sig syscall.Signal) {
	_ = syscall.Kill(-c.PID(), sig)
	select {
	case <-c.Done:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-c.PID(), syscall.SIGKILL)
		select {
		case <-c.Done:
		case <-time.After(10 * time.Second):
		}
	}
	p.forget(c)
}

// forget stops tracking a child that has exited.
func (p *Set) forget(c *Child) {
	p.mu.Lock()
	for i, x := range p.children {
		if x == c {
			p.children = append(p.children[:i], p.children[i+1:]...)
			break
		}
	}
	p.mu.Unlock()
}

// Len is the number of children still tracked.
func (p *Set) Len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.children)
}

// KillAll kills every child still tracked.
func (p *Set) KillAll() {
	p.mu.Lock()
	cs := append([]*Child(nil), p.children...)
	p.mu.Unlock()
	for _, c := range cs {
		p.Kill(c)
	}
}

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort() (int, error) {
	ln, err := (&net.ListenConfig{}).Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// HTTPOK GETs url and wants 200 OK: the readiness probe of a child that
// serves HTTP (WaitFor's cond).
func HTTPOK(ctx context.Context, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	return nil
}

// WaitFor polls cond every 10 ms until it returns nil, the child (if not
// nil) exits or the timeout passes.
func WaitFor(ctx context.Context, timeout time.Duration, what string, c *Child, cond func(ctx context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tk := time.NewTicker(10 * time.Millisecond)
	defer tk.Stop()
	var last error
	for {
		if last = cond(ctx); last == nil {
			return nil
		}
		if c != nil {
			if gone, err := c.Exited(); gone {
				return fmt.Errorf("%s: %w", what, err)
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %w (last: %w)", what, ctx.Err(), last)
		case <-tk.C:
		}
	}
}
