package server

import (
	"crypto/tls"
	"net"
	"net/http"
	"sync"
	"time"
)

// Defaults of the client connection limits (docs/SECURITY.md).
const (
	// DefaultMaxConnections is the cap on open client connections when the
	// configuration sets none; the command derives its own from the open
	// file limit.
	DefaultMaxConnections = 10000
	// DefaultIdleTimeout closes a kept-alive connection that sends no new
	// request for that long.
	DefaultIdleTimeout = 60 * time.Second
	// DefaultReadHeaderTimeout closes a connection whose request headers do
	// not arrive in that time.
	DefaultReadHeaderTimeout = 10 * time.Second
)

// connLimiter caps the open client connections. A connection accepted at the
// cap makes room by closing the connection that has been idle the longest (or
// never sent a request); only when every connection is busy with a request is
// the new one closed at once. Idle connections cost a file each and serve no
// one, so they go first. net/http reports the states through ConnState.
type connLimiter struct {
	net.Listener
	max int

	mu   sync.Mutex
	open int
	// idle holds the open connections without a request in progress, with
	// the time they became so.
	idle map[*limitedConn]time.Time
}

func newConnLimiter(ln net.Listener, max int) *connLimiter {
	return &connLimiter{Listener: ln, max: max, idle: make(map[*limitedConn]time.Time)}
}

// Accept returns the next connection within the cap.
func (l *connLimiter) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if lc := l.admit(c); lc != nil {
			return lc, nil
		}
		c.Close()
	}
}

// admit counts c in, closing the longest-idle connection if the cap is
// reached; nil when every open connection is busy.
func (l *connLimiter) admit(c net.Conn) *limitedConn {
	l.mu.Lock()
	var victim *limitedConn
	if l.open >= l.max {
		var since time.Time
		for ic, t := range l.idle {
			if victim == nil || t.Before(since) {
				victim, since = ic, t
			}
		}
		if victim == nil {
			l.mu.Unlock()
			return nil
		}
		l.release(victim)
	}
	lc := &limitedConn{Conn: c, l: l}
	l.open++
	l.idle[lc] = time.Now()
	l.mu.Unlock()
	if victim != nil {
		victim.Conn.Close()
	}
	return lc
}

// release uncounts c, once; l.mu is held.
func (l *connLimiter) release(c *limitedConn) {
	if c.released {
		return
	}
	c.released = true
	l.open--
	delete(l.idle, c)
}

// connState is the http.Server's ConnState hook.
func (l *connLimiter) connState(c net.Conn, state http.ConnState) {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	lc, ok := c.(*limitedConn)
	if !ok {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if lc.released {
		return
	}
	switch state {
	case http.StateNew, http.StateIdle:
		l.idle[lc] = time.Now()
	case http.StateActive:
		delete(l.idle, lc)
	case http.StateHijacked, http.StateClosed:
		l.release(lc)
	}
}

// count returns the open connections.
func (l *connLimiter) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.open
}

// limitedConn is a connection counted by a connLimiter until it is closed.
type limitedConn struct {
	net.Conn
	l        *connLimiter
	released bool // guarded by l.mu
}

func (c *limitedConn) Close() error {
	c.l.mu.Lock()
	c.l.release(c)
	c.l.mu.Unlock()
	return c.Conn.Close()
}
