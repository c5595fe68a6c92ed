package main

import (
	"context"
	"net"
	"sync"
	"time"
)

// proxy is a TCP proxy on loopback between the workers and Redis or NATS
// that can cut every connection (and refuse new ones until restored) and
// delay every chunk it forwards. Hand-written rather than toxiproxy as a
// library: toxiproxy/v2 brings its HTTP control API, gorilla/mux and a
// Prometheus client along, and the suite needs only these two faults,
// about a hundred lines with the standard library.
type proxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	cut   bool
	delay time.Duration
	// delayOnly, when set, limits the delay to connections from this
	// client IP (a Redis replica with its own source address).
	delayOnly string
	conns     map[net.Conn]struct{}
	closed    bool
	wg        sync.WaitGroup
	accepts   int
}

// newProxy listens on a free loopback port and forwards to target.
func newProxy(target string) (*proxy, error) { return newProxyDelaying(target, "") }

// newProxyDelaying is newProxy whose delay applies only to connections
// from client IP only ("" for all).
func newProxyDelaying(target, only string) (*proxy, error) {
	ln, err := (&net.ListenConfig{}).Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &proxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}, delayOnly: only}
	p.wg.Add(1)
	go p.serve()
	return p, nil
}

// addr is the proxy's listening address.
func (p *proxy) addr() string { return p.ln.Addr().String() }

func (p *proxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return // closed
		}
		p.mu.Lock()
		if p.cut || p.closed {
			p.mu.Unlock()
			_ = c.Close() // refused while cut
			continue
		}
		p.accepts++
		p.conns[c] = struct{}{}
		p.wg.Add(1)
		p.mu.Unlock()
		go p.pipe(c)
	}
}

// pipe dials the target and copies both ways until either side ends or
// the proxy cuts it.
func (p *proxy) pipe(client net.Conn) {
	defer p.wg.Done()
	defer p.drop(client)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	server, err := (&net.Dialer{}).DialContext(ctx, "tcp", p.target)
	cancel()
	if err != nil {
		return
	}
	p.mu.Lock()
	if p.cut || p.closed {
		p.mu.Unlock()
		_ = server.Close()
		return
	}
	p.conns[server] = struct{}{}
	p.mu.Unlock()
	defer p.drop(server)
	delayed := true
	if p.delayOnly != "" {
		host, _, _ := net.SplitHostPort(client.RemoteAddr().String())
		delayed = host == p.delayOnly
	}
	done := make(chan struct{}, 2)
	go func() { p.copy(server, client, delayed); done <- struct{}{} }()
	go func() { p.copy(client, server, delayed); done <- struct{}{} }()
	<-done // one side ended: close both, which ends the other copy
	_ = client.Close()
	_ = server.Close()
	<-done
}

// chunk is data read at a time, due at read time + the delay in force.
type chunk struct {
	data []byte
	due  time.Time
}

// copy forwards src to dst. A reader stamps each chunk with the delay in
// force when it was read and a writer forwards it when due, so a delay is
// latency, not a cap on throughput.
func (p *proxy) copy(dst, src net.Conn, delayed bool) {
	chunks := make(chan chunk, 1024)
	go func() {
		defer close(chunks)
		for {
			buf := make([]byte, 32<<10)
			n, err := src.Read(buf)
			if n > 0 {
				var d time.Duration
				if delayed {
					p.mu.Lock()
					d = p.delay
					p.mu.Unlock()
				}
				chunks <- chunk{data: buf[:n], due: time.Now().Add(d)}
			}
			if err != nil {
				return // EOF or the connection was cut
			}
		}
	}()
	for c := range chunks {
		if wait := time.Until(c.due); wait > 0 {
			t := time.NewTimer(wait)
			<-t.C
		}
		if _, err := dst.Write(c.data); err != nil {
			_ = src.Close() // ends the reader
			for range chunks {
			}
			return
		}
	}
}

func (p *proxy) drop(c net.Conn) {
	_ = c.Close()
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
}

// setCut cuts every open connection and refuses new ones (true), or lets
// connections through again (false).
func (p *proxy) setCut(cut bool) {
	p.mu.Lock()
	p.cut = cut
	var open []net.Conn
	if cut {
		for c := range p.conns {
			open = append(open, c)
		}
	}
	p.mu.Unlock()
	for _, c := range open {
		_ = c.Close()
	}
}

// setDelay holds back every forwarded chunk by d (0: none).
func (p *proxy) setDelay(d time.Duration) {
	p.mu.Lock()
	p.delay = d
	p.mu.Unlock()
}

// close stops listening, cuts every connection and waits for the copies.
func (p *proxy) close() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	_ = p.ln.Close()
	p.setCut(true)
	p.wg.Wait()
}
