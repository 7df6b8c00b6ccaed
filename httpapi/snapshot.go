package httpapi

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"go.uber.org/zap"

	"github.com/raftkv/raftkv/backup"
	"github.com/raftkv/raftkv/raftnode"
)

// maxBackups bounds the backups a node streams at once. Each holds a frozen
// copy-on-write view of the store, and every write while it streams copies
// the tree nodes it touches once per view: a few views cost little, many
// would multiply that.
const maxBackups = 2

// serveSnapshot streams a backup of the whole store (GET /v1/snapshot; the
// format is package backup's). Any member serves it from its own state: by
// default after a ReadIndex round, so it holds every write acknowledged
// before the request; with ?consistency=serializable from what the member has
// applied. The store is frozen copy-on-write, so writes go on while it
// streams.
func (s *Server) serveSnapshot(w http.ResponseWriter, r *http.Request, _ string) error {
	q, err := parseQuery(r)
	if err != nil {
		return err
	}
	if err := onlyParams(q, "consistency"); err != nil {
		return err
	}
	serializable, err := consistencyParam(q)
	if err != nil {
		return err
	}
	select {
	case s.backups <- struct{}{}:
		defer func() { <-s.backups }()
	default:
		return ErrTooManyBackups
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
	frozen, err := s.cfg.KV.Freeze(ctx, serializable)
	cancel()
	if err != nil {
		return err
	}
	c := s.cfg.Cluster
	hdr := backup.Header{
		ClusterID:     raftnode.FormatID(c.ClusterID()),
		MemberID:      c.ID(),
		CreatedAt:     time.Now().UTC(),
		ServerVersion: s.cfg.Version,
	}
	for _, m := range c.Members() {
		hdr.Members = append(hdr.Members, backup.Member{ID: m.ID, Name: m.Name, PeerURLs: m.PeerURLs,
			ClientURLs: m.ClientURLs, IsLearner: m.IsLearner})
	}
	enc, err := backup.NewEncoder(hdr, frozen)
	if err != nil {
		return err
	}
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Length", strconv.FormatInt(enc.Size(), 10))
	h.Set("Content-Disposition", fmt.Sprintf(`attachment; filename="raftkv-%s-%d.backup"`, hdr.ClusterID, frozen.Revision()))
	h.Set("Cache-Control", "no-store")
	setRevision(h, frozen.Revision())
	w.WriteHeader(http.StatusOK)
	// A backup lasts as long as the client takes to read it, but each write
	// must be taken within WriteTimeout, as a watch's: a client that stops
	// reading loses the backup rather than holding its view forever.
	start := time.Now()
	out := &deadlineWriter{sw: streamWriter{w: w, rc: http.NewResponseController(w), timeout: s.cfg.WriteTimeout}}
	n, err := enc.WriteTo(out)
	if err != nil {
		// The status is sent: the client sees a body shorter than its
		// Content-Length, and the checksum catches anything else.
		s.cfg.Logger.Warn("backup not delivered", zap.Int64("bytes", n), zap.Error(err))
		return nil
	}
	s.cfg.Logger.Info("backup delivered", zap.Uint64("revision", frozen.Revision()), zap.Int("keys", frozen.Len()),
		zap.Int64("bytes", n), zap.Duration("took", time.Since(start)))
	return nil
}

// deadlineWriter is an io.Writer over a streamWriter: each write gets its
// own deadline and is flushed.
type deadlineWriter struct{ sw streamWriter }

func (d *deadlineWriter) Write(p []byte) (int, error) {
	if err := d.sw.write(p); err != nil {
		return 0, err
	}
	return len(p), nil
}

var _ io.Writer = (*deadlineWriter)(nil)
