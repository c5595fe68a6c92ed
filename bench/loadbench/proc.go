package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// clockTicks is sysconf(_SC_CLK_TCK): 100 on every Linux the benchmark runs
// on (the kernel's USER_HZ, fixed by the ABI on x86 and arm64).
const clockTicks = 100

// cpuTime is a process's user plus system CPU time from /proc/<pid>/stat.
func cpuTime(pid int) (time.Duration, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return parseStatCPU(string(data))
}

// parseStatCPU reads utime and stime (fields 14 and 15) of a
// /proc/<pid>/stat line. The command name (field 2) is in parentheses and
// may hold spaces and parentheses, so fields are counted after the last ')'.
func parseStatCPU(stat string) (time.Duration, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, errors.New("proc stat: no command name")
	}
	f := strings.Fields(stat[i+1:])
	// f[0] is field 3 (state), so utime (14) is f[11] and stime (15) f[12].
	if len(f) < 13 {
		return 0, fmt.Errorf("proc stat: %d fields after the command name, want at least 13", len(f))
	}
	var ticks int64
	for _, s := range f[11:13] {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("proc stat: %w", err)
		}
		ticks += v
	}
	return time.Duration(ticks) * time.Second / clockTicks, nil
}

// peakRSSKiB is a process's VmHWM (the kernel's high-water mark of its
// resident set since exec) from /proc/<pid>/status, in KiB.
func peakRSSKiB(pid int) (int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	return parseStatusKiB(string(data), "VmHWM")
}

func parseStatusKiB(status, field string) (int64, error) {
	for line := range strings.Lines(status) {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			v = strings.TrimSuffix(strings.TrimSpace(v), " kB")
			return strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		}
	}
	return 0, fmt.Errorf("proc status: no %s", field)
}

// child is one process the benchmark started, in its own process group so
// that kill reaches everything it forked.
type child struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// procs tracks every child process so that all of them die at the end,
// whatever path the benchmark takes out.
type procs struct {
	ctx      context.Context // the run's context: it bounds every child
	mu       sync.Mutex
	children []*child
	logs     io.Writer
}

func (p *procs) start(name string, env []string, path string, args ...string) (*child, error) {
	// The whole run's context: each child is killed by kill or killAll
	// before that ends; its end kills what is left.
	cmd := exec.CommandContext(p.ctx, path, args...)
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout = p.logs
	cmd.Stderr = p.logs
	// Own process group, and SIGKILL if the benchmark itself dies.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	c := &child{name: name, cmd: cmd, done: make(chan struct{})}
	go func() {
		c.err = cmd.Wait()
		close(c.done)
	}()
	p.mu.Lock()
	p.children = append(p.children, c)
	p.mu.Unlock()
	return c, nil
}

// run starts a short-lived child and waits for it to exit successfully.
func (p *procs) run(ctx context.Context, name string, env []string, path string, args ...string) error {
	c, err := p.start(name, env, path, args...)
	if err != nil {
		return err
	}
	select {
	case <-c.done:
		p.forget(c)
		if c.err != nil {
			return fmt.Errorf("%s: %w", name, c.err)
		}
		return nil
	case <-ctx.Done():
		p.kill(c)
		return fmt.Errorf("%s: %w", name, ctx.Err())
	}
}

func (c *child) pid() int { return c.cmd.Process.Pid }

// exited reports whether the child has exited, with its error.
func (c *child) exited() (bool, error) {
	select {
	case <-c.done:
		if c.err == nil {
			return true, fmt.Errorf("%s exited", c.name)
		}
		return true, fmt.Errorf("%s exited: %w", c.name, c.err)
	default:
		return false, nil
	}
}

// kill SIGKILLs the child's process group and waits for the child.
func (p *procs) kill(c *child) {
	_ = syscall.Kill(-c.pid(), syscall.SIGKILL)
	select {
	case <-c.done:
	case <-time.After(10 * time.Second):
	}
	p.forget(c)
}

// forget stops tracking a child that has exited.
func (p *procs) forget(c *child) {
	p.mu.Lock()
	for i, x := range p.children {
		if x == c {
			p.children = append(p.children[:i], p.children[i+1:]...)
			break
		}
	}
	p.mu.Unlock()
}

// killAll kills every child still tracked.
func (p *procs) killAll() {
	p.mu.Lock()
	cs := append([]*child(nil), p.children...)
	p.mu.Unlock()
	for _, c := range cs {
		p.kill(c)
	}
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort() (int, error) {
	ln, err := (&net.ListenConfig{}).Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// waitFor polls cond every 10 ms until it returns nil, the child exits or
// the timeout passes.
func waitFor(ctx context.Context, timeout time.Duration, what string, c *child, cond func(ctx context.Context) error) error {
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
			if gone, err := c.exited(); gone {
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
