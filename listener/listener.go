// Package listener provides TCP listeners that stop cleanly: Close is
// idempotent and safe to call from any goroutine, so the owner of a server can
// stop it during shutdown without racing the goroutine blocked in Accept.
package listener

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"sync"
	"time"
)

// keepAlivePeriod matches net/http's default for servers; it lets the kernel
// detect peers that vanished without closing their connections.
const keepAlivePeriod = 3 * time.Minute

// Listener is a TCP listener whose Close may be called more than once.
type Listener struct {
	net.Listener
	tcp       net.Listener // below TLS, if any
	tlsConfig *tls.Config
	closeOnce sync.Once
	closeErr  error
}

// New listens on addr ("host:port"; port 0 picks a free port). When tlsConfig
// is non-nil the listener serves TLS.
func New(addr string, tlsConfig *tls.Config) (*Listener, error) {
	lc := net.ListenConfig{KeepAlive: keepAlivePeriod}
	ln, err := lc.Listen(context.Background(), "tcp", addr)
	if err != nil {
		return nil, err
	}
	l := &Listener{Listener: ln, tcp: ln, tlsConfig: tlsConfig}
	if tlsConfig != nil {
		l.Listener = tls.NewListener(ln, tlsConfig)
	}
	return l, nil
}

// WrapTCP puts wrap between the TCP listener and TLS (if any), so that what
// it sees are TCP connections before their handshake: a connection limit
// must count those. Call it before the first Accept.
func (l *Listener) WrapTCP(wrap func(net.Listener) net.Listener) {
	l.tcp = wrap(l.tcp)
	l.Listener = l.tcp
	if l.tlsConfig != nil {
		l.Listener = tls.NewListener(l.tcp, l.tlsConfig)
	}
}

// Close stops accepting connections. Calls after the first return the first
// call's result.
func (l *Listener) Close() error {
	l.closeOnce.Do(func() {
		l.closeErr = l.Listener.Close()
		if errors.Is(l.closeErr, net.ErrClosed) {
			l.closeErr = nil
		}
	})
	return l.closeErr
}
