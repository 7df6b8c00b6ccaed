package listener

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	"go.uber.org/zap"
)

// Reloader holds the certificate and the trusted CA bundle of one TLS
// endpoint and reads their files again when they change, so that
// certificates can be rotated without a restart. etcd reads its key pair
// at every handshake; this also follows the CA bundle, reads only what
// changed, and keeps the previous files when new ones are bad.
//
// Every handshake asks it for the current files: servers through
// ServerConfig's GetConfigForClient, dialers through DialTLSContext. A
// handshake costs a stat of each file; the files are read and parsed again
// only when one of them changed (see watched). A change that cannot be used
// (a file missing, unreadable, not PEM, half-written, or a key that does not
// match its certificate) keeps the previous certificate or bundle, and is
// logged once, not at every handshake. The key pair and the CA bundle are
// kept or replaced independently.
//
// What is not reloaded: the settings themselves (file names,
// ClientCertAuth, the allowed names), and connections already established,
// which keep the certificates of their handshake.
type Reloader struct {
	files TLSFiles
	lg    *zap.Logger

	mu   sync.Mutex
	pair *watched[tls.Certificate]
	ca   *watched[*x509.CertPool] // nil without TrustedCAFile
	// server and client are built from pair and ca whenever either
	// changes, and never modified after: handshakes in flight use them.
	server, client *tls.Config
}

// NewReloader loads f's files, failing as ServerConfig does if they cannot
// be used, and returns a Reloader that serves them; nil when TLS is off.
// lg receives a line for every reload and every refused change.
func (f TLSFiles) NewReloader(lg *zap.Logger) (*Reloader, error) {
	if !f.Enabled() {
		return nil, nil
	}
	r := &Reloader{files: f, lg: lg, pair: &watched[tls.Certificate]{
		paths: []string{f.CertFile, f.KeyFile},
		parse: func(data [][]byte) (tls.Certificate, error) {
			return parseKeyPair(f.CertFile, f.KeyFile, data[0], data[1])
		},
	}}
	now := time.Now()
	if _, err := r.pair.refresh(now); err != nil {
		return nil, fmt.Errorf("load certificate: %w", err)
	}
	if f.TrustedCAFile != "" {
		r.ca = &watched[*x509.CertPool]{
			paths: []string{f.TrustedCAFile},
			parse: func(data [][]byte) (*x509.CertPool, error) { return parseCAPool(f.TrustedCAFile, data[0]) },
		}
		if _, err := r.ca.refresh(now); err != nil {
			return nil, fmt.Errorf("trusted CA: %w", err)
		}
	}
	if f.ClientCertAuth && r.ca == nil {
		// A server without ClientCAs would check client certificates
		// against the system's CAs.
		return nil, ErrClientAuthWithoutCA
	}
	r.build()
	return r, nil
}

// ServerConfig is the configuration to serve with: each handshake gets the
// certificate and trusted CAs of the files as they are then. nil when r is.
func (r *Reloader) ServerConfig() *tls.Config {
	if r == nil {
		return nil
	}
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			server, _ := r.configs()
			return server, nil
		},
	}
}

// DialTLSContext connects to addr and completes a TLS handshake, presenting
// the certificate of the files as they are now and checking the server's
// certificate against their CA bundle (the system's without one) and
// against addr's host, as net/http does. It fits
// http.Transport.DialTLSContext, which then ignores TLSClientConfig and
// TLSHandshakeTimeout: ctx bounds the dial and the handshake.
//
// A dialer cannot take its trusted CAs from a callback the way a server
// does (GetConfigForClient): tls.Config's verification callbacks are not
// told which host was dialed when it is an IP address. So each dial gets a
// configuration of its own instead.
func (r *Reloader) DialTLSContext(ctx context.Context, network, addr string) (net.Conn, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	_, client := r.configs()
	cfg := client.Clone()
	cfg.ServerName = host
	var d net.Dialer
	raw, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	conn := tls.Client(raw, cfg)
	if err := conn.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, err
	}
	return conn, nil
}

// configs returns the configurations for the next handshake, reading the
// files again first if they changed.
func (r *Reloader) configs() (server, client *tls.Config) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now()
	changed, err := r.pair.refresh(now)
	switch {
	case err != nil:
		r.lg.Warn("cannot reload the TLS certificate; keeping the previous one",
			zap.String("cert-file", r.files.CertFile), zap.String("key-file", r.files.KeyFile), zap.Error(err))
	case changed:
		leaf := r.pair.value.Leaf
		r.lg.Info("reloaded the TLS certificate", zap.String("cert-file", r.files.CertFile),
			zap.String("serial", fmt.Sprintf("%X", leaf.SerialNumber)), zap.String("subject", leaf.Subject.String()),
			zap.Time("not-after", leaf.NotAfter))
	}
	if r.ca != nil {
		caChanged, err := r.ca.refresh(now)
		switch {
		case err != nil:
			r.lg.Warn("cannot reload the trusted CA bundle; keeping the previous one",
				zap.String("trusted-ca-file", r.files.TrustedCAFile), zap.Error(err))
		case caChanged:
			r.lg.Info("reloaded the trusted CA bundle", zap.String("trusted-ca-file", r.files.TrustedCAFile))
		}
		changed = changed || caChanged
	}
	if changed {
		r.build()
	}
	return r.server, r.client
}

// build makes new configurations from the current certificate and bundle.
func (r *Reloader) build() {
	var pool *x509.CertPool
	if r.ca != nil {
		pool = r.ca.value
	}
	r.server = r.files.serverConfig(r.pair.value, pool)
	r.client = r.files.clientConfig(r.pair.value, pool)
}

// racyWindow is how long after a file's modification time its stat cannot
// be trusted to show a later change. File systems record modification
// times in ticks (a few milliseconds on Linux, up to two seconds on FAT):
// a file rewritten within the tick of the last read, to the same size,
// would look unchanged. Git's index has the same problem and the same
// answer: a file modified too recently is compared by content.
const racyWindow = 2 * time.Second

// watched is a value parsed from files, parsed again when they change. It
// remembers the files' stat and a digest of what it last read: a stat that
// differs (modification time, size, or another file now at the path, as a
// rename or a Kubernetes secret update puts there) makes it read the files,
// and only content that differs from the last read is parsed. A read within
// racyWindow of a file's modification time is not trusted to have seen its
// final content, so until a read is that much later every refresh reads the
// files; after that, a refresh costs a stat per file.
type watched[T any] struct {
	paths []string
	parse func(data [][]byte) (T, error)

	value  T             // the last value that parsed
	stats  []os.FileInfo // at the last read; nil entries for files that failed to stat
	readAt time.Time
	digest [sha256.Size]byte // of the last read's content, or of its error
}

// refresh reads and parses the files again if they changed since the last
// read. It reports whether value was replaced, or the error that refused
// the change; a change is reported once, however often refresh runs
// before the files change again.
func (w *watched[T]) refresh(now time.Time) (changed bool, err error) {
	stats := make([]os.FileInfo, len(w.paths))
	for i, p := range w.paths {
		stats[i], _ = os.Stat(p) // a failure shows again when the file is read
	}
	first := w.readAt.IsZero()
	if !first && sameStats(stats, w.stats) && !w.racy() {
		return false, nil
	}
	data, readErr := readFiles(w.paths)
	digest := digestOf(data, readErr)
	w.stats, w.readAt = stats, now
	if !first && digest == w.digest {
		return false, nil
	}
	w.digest = digest
	if readErr != nil {
		return false, readErr
	}
	v, err := w.parse(data)
	if err != nil {
		return false, err
	}
	w.value = v
	return true, nil
}

// racy reports whether a file could have changed since the last read
// without its stat showing it. A modification time in the future (a clock
// set back) keeps a file racy, and read at every refresh, until it passes.
func (w *watched[T]) racy() bool {
	for _, fi := range w.stats {
		if fi != nil && w.readAt.Sub(fi.ModTime()) < racyWindow {
			return true
		}
	}
	return false
}

func sameStats(a, b []os.FileInfo) bool {
	for i := range a {
		switch {
		case a[i] == nil || b[i] == nil:
			if a[i] != b[i] {
				return false
			}
		case !a[i].ModTime().Equal(b[i].ModTime()) || a[i].Size() != b[i].Size() || !os.SameFile(a[i], b[i]):
			return false
		}
	}
	return true
}

func readFiles(paths []string) ([][]byte, error) {
	data := make([][]byte, len(paths))
	for i, p := range paths {
		var err error
		if data[i], err = os.ReadFile(p); err != nil {
			return nil, err
		}
	}
	return data, nil
}

// digestOf identifies what a read found, so that the same bad content, or
// the same failure to read, is reported only once.
func digestOf(data [][]byte, readErr error) [sha256.Size]byte {
	h := sha256.New()
	if readErr != nil {
		h.Write([]byte("error\x00" + readErr.Error()))
	}
	for _, d := range data {
		h.Write(binary.BigEndian.AppendUint64(nil, uint64(len(d))))
		h.Write(d)
	}
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	return sum
}
