package raftnode

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strings"

	"go.etcd.io/etcd/client/pkg/v3/types"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"
)

// The peer port's guard. rafthttp checks a message's cluster id and
// version, nothing else: it hands raft a message from any sender id to any
// recipient id, adds a dialable "remote" for any X-Server-From header with
// X-PeerURLs, and saves any snapshot body to disk before raft looks at it.
// The guard refuses, before rafthttp or raft see them, messages whose
// sender is not a member or whose recipient is not this member, and
// snapshots that do not come from the current leader or exceed
// Config.MaxSnapshotBytes. It cannot tell a member from someone who
// claims its id: only mutual TLS can (docs/SECURITY.md).

// maxSnapshotMessageBytes bounds the raft message that precedes a
// snapshot's data: metadata and the member table, a few KiB even for a
// large cluster (rafthttp itself allows 64 MiB).
const maxSnapshotMessageBytes = 1 << 20

// refusal is a peer-port refusal. rafthttp's handlers answer an error that
// has WriteTo with it instead of their own 500.
type refusal struct {
	err    error
	status int
}

func (r refusal) Error() string { return r.err.Error() }

func (r refusal) Unwrap() error { return r.err }

func (r refusal) WriteTo(w http.ResponseWriter) { http.Error(w, r.err.Error(), r.status) }

// The statuses of refusals. None is 403, which rafthttp's senders take as
// "you were removed" and stop: a member added a moment ago, whose addition
// this member has not applied yet, must retry rather than stop.
var (
	refuseSender    = refusal{ErrUnknownSender, http.StatusNotFound}
	refuseRecipient = refusal{ErrWrongRecipient, http.StatusPreconditionFailed}
	refuseNotLeader = refusal{ErrSnapshotNotFromLeader, http.StatusConflict}
	refuseBadSnap   = refusal{ErrBadSnapshot, http.StatusBadRequest}
)

// checkSender refuses a sender that is not a member. A member that has not
// yet applied its own addition (it is joining, or bootstrapping and has not
// applied the initial configuration) does not know the members yet, so it
// accepts the peers it was started with, the ones it dials: the leader is
// among them. A member added since this one applied its last configuration
// change is refused until this one applies the addition; raft resends.
func (n *Node) checkSender(id uint64) error {
	view := n.view.Load()
	_, forcedOut := n.forcedOut[id]
	switch {
	case view.isRemoved(id) || forcedOut:
		return errFromRemovedMember{}
	case id == raft.None || id == n.cfg.ID:
		return refuseSender
	}
	if _, ok := view.members[id]; ok {
		return nil
	}
	if _, self := view.members[n.cfg.ID]; !self && id <= uint64(len(n.cfg.Peers)) {
		return nil
	}
	return refuseSender
}

// checkMessage is what every message from the peer port passes before raft
// steps it.
func (n *Node) checkMessage(m *raftpb.Message) error {
	if err := n.checkSender(m.GetFrom()); err != nil {
		return n.refused(err, "from", m.GetFrom(), "type", m.GetType())
	}
	if m.GetTo() != n.cfg.ID {
		return n.refused(refuseRecipient, "from", m.GetFrom(), "to", m.GetTo())
	}
	if m.GetType() == raftpb.MsgSnap {
		// raftkv sends snapshots only through /raft/snapshot, which saved
		// the data file first; a MsgSnap without one (through /raft, say)
		// would stop the Ready loop when it looks for the file.
		if err := n.checkSnapshotEnvelope(m); err != nil {
			return n.refused(refuseBadSnap, "from", m.GetFrom(), "error", err)
		}
		if _, err := os.Stat(n.snapDBPath(m.GetSnapshot().GetMetadata().GetIndex())); err != nil {
			return n.refused(refuseBadSnap, "from", m.GetFrom(), "error", err)
		}
	}
	return nil
}

// checkSnapshotEnvelope checks a snapshot message's data the way
// completeSnapshot will read it.
func (n *Node) checkSnapshotEnvelope(m *raftpb.Message) error {
	_, _, streamed, err := decodeEnvelope(m.GetSnapshot().GetData())
	if err == nil && !streamed {
		err = errors.New("snapshot data not streamed")
	}
	return err
}

func (n *Node) snapDBPath(index uint64) string {
	return filepath.Join(n.storage.snapDir, fmt.Sprintf("%016x.snap.db", index))
}

// refused counts and logs a refusal and returns it. Refusals are logged at
// debug level: a stranger can send thousands a second.
func (n *Node) refused(err error, kv ...any) error {
	var r refusal
	reason := "removed_sender"
	if errors.As(err, &r) {
		switch r.err {
		case ErrUnknownSender:
			reason = "unknown_sender"
		case ErrWrongRecipient:
			reason = "wrong_recipient"
		case ErrSnapshotNotFromLeader:
			reason = "snapshot_not_from_leader"
		case ErrSnapshotTooLarge:
			reason = "snapshot_too_large"
		case ErrBadSnapshot:
			reason = "bad_snapshot"
		}
	}
	n.metrics.peerRefused.WithLabelValues(reason).Inc()
	if ce := n.lg.Check(zap.DebugLevel, "refused a peer message"); ce != nil {
		fields := []zap.Field{zap.String("reason", reason)}
		for i := 0; i+1 < len(kv); i += 2 {
			fields = append(fields, zap.Any(kv[i].(string), kv[i+1]))
		}
		ce.Write(fields...)
	}
	return err
}

// guardPeer wraps rafthttp's handler: requests that name their sender (the
// pipeline's X-Server-From, a stream's path) are refused before rafthttp
// sees them unless the sender is a member; snapshots go through
// serveSnapshot.
func (n *Node) guardPeer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		switch {
		case p == "/raft/snapshot" && r.Method == http.MethodPost:
			n.serveSnapshot(w, r, next)
			return
		case p == "/raft" && r.Method == http.MethodPost:
			if err := n.checkSenderHeader(r); err != nil {
				writeRefusal(w, err)
				return
			}
		case strings.HasPrefix(p, "/raft/stream/"):
			from, err := types.IDFromString(path.Base(p))
			if err == nil {
				err = n.checkSender(uint64(from))
			}
			if err != nil {
				writeRefusal(w, n.refused(orSender(err), "stream-from", path.Base(p)))
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

func (n *Node) checkSenderHeader(r *http.Request) error {
	from, err := types.IDFromString(r.Header.Get("X-Server-From"))
	if err == nil {
		err = n.checkSender(uint64(from))
	}
	if err != nil {
		return n.refused(orSender(err), "x-server-from", r.Header.Get("X-Server-From"))
	}
	return nil
}

// orSender keeps a refusal and turns anything else (an unparsable id) into
// the unknown-sender one.
func orSender(err error) error {
	var w interface{ WriteTo(http.ResponseWriter) }
	if errors.As(err, &w) {
		return err
	}
	return refuseSender
}

func writeRefusal(w http.ResponseWriter, err error) {
	var wr interface{ WriteTo(http.ResponseWriter) }
	if errors.As(err, &wr) {
		wr.WriteTo(w)
		return
	}
	http.Error(w, err.Error(), http.StatusBadRequest)
}

// serveSnapshot receives a snapshot only from the leader this member
// follows, one at a time, ahead of its commit index (raft ignores anything
// else, and rafthttp would leave its data file on disk until a restart),
// with at most MaxSnapshotBytes of data; the data file of a receive that
// fails is removed.
func (n *Node) serveSnapshot(w http.ResponseWriter, r *http.Request, next http.Handler) {
	if err := n.checkSenderHeader(r); err != nil {
		writeRefusal(w, err)
		return
	}
	from, _ := types.IDFromString(r.Header.Get("X-Server-From"))
	if lead := n.lead.current(); uint64(from) != lead {
		writeRefusal(w, n.refused(refuseNotLeader, "from", uint64(from), "leader", lead))
		return
	}
	n.snapMu.Lock()
	defer n.snapMu.Unlock()
	raw, m, err := readSnapshotMessage(r.Body)
	if err == nil && m.GetType() != raftpb.MsgSnap {
		err = fmt.Errorf("message type %s", m.GetType())
	}
	if err == nil {
		err = n.checkSnapshotEnvelope(m)
	}
	if err != nil {
		writeRefusal(w, n.refused(refuseBadSnap, "from", uint64(from), "error", err))
		return
	}
	if m.GetFrom() != uint64(from) {
		writeRefusal(w, n.refused(refuseSender, "from", m.GetFrom(), "x-server-from", uint64(from)))
		return
	}
	index := m.GetSnapshot().GetMetadata().GetIndex()
	commit := n.Status().Commit
	if index <= commit {
		writeRefusal(w, n.refused(refuseNotLeader, "from", uint64(from), "index", index, "commit", commit))
		return
	}
	// Data files of snapshots at or below the commit index were applied or
	// ignored by raft; a stranger's are removed here at the latest.
	n.storage.releaseSnapDBs(commit)
	dbPath := n.snapDBPath(index)
	_, statErr := os.Stat(dbPath)
	existed := statErr == nil
	limited := &limitReader{r: r.Body, left: n.cfg.MaxSnapshotBytes}
	r.Body = readCloser{io.MultiReader(bytes.NewReader(raw), limited), r.Body}
	rec := &snapshotResponse{ResponseWriter: w, limited: limited}
	next.ServeHTTP(rec, r)
	if rec.status == http.StatusNoContent {
		return
	}
	if limited.exceeded {
		n.refused(refusal{ErrSnapshotTooLarge, http.StatusRequestEntityTooLarge}, "from", uint64(from), "index", index, "max-snapshot-bytes", n.cfg.MaxSnapshotBytes)
	}
	if !existed {
		if err := os.Remove(dbPath); err != nil && !errors.Is(err, os.ErrNotExist) {
			n.lg.Warn("remove the data of a refused snapshot", zap.String("file", dbPath), zap.Error(err))
		}
	}
}

// readSnapshotMessage reads the length-prefixed raft message that starts a
// snapshot body, as rafthttp's decoder does, and returns its bytes (to hand
// on to rafthttp) and the message.
func readSnapshotMessage(body io.Reader) ([]byte, *raftpb.Message, error) {
	var prefix [8]byte
	if _, err := io.ReadFull(body, prefix[:]); err != nil {
		return nil, nil, err
	}
	size := binary.BigEndian.Uint64(prefix[:])
	if size > maxSnapshotMessageBytes {
		return nil, nil, fmt.Errorf("snapshot message of %d bytes", size)
	}
	raw := make([]byte, 8+size)
	copy(raw, prefix[:])
	if _, err := io.ReadFull(body, raw[8:]); err != nil {
		return nil, nil, err
	}
	m := &raftpb.Message{}
	if err := proto.Unmarshal(raw[8:], m); err != nil {
		return nil, nil, err
	}
	return raw, m, nil
}

// limitReader fails a read past left bytes, and says so.
type limitReader struct {
	r        io.Reader
	left     int64
	exceeded bool
}

func (l *limitReader) Read(p []byte) (int, error) {
	if l.left <= 0 {
		// One byte more tells a body of exactly the limit from a longer one.
		var b [1]byte
		if n, _ := l.r.Read(b[:]); n > 0 {
			l.exceeded = true
			return 0, ErrSnapshotTooLarge
		}
		return 0, io.EOF
	}
	if int64(len(p)) > l.left {
		p = p[:l.left]
	}
	n, err := l.r.Read(p)
	l.left -= int64(n)
	return n, err
}

type readCloser struct {
	io.Reader
	io.Closer
}

// snapshotResponse records rafthttp's status, and answers 413 instead of
// its 500 when the data exceeded the limit.
type snapshotResponse struct {
	http.ResponseWriter
	limited *limitReader
	status  int
}

func (s *snapshotResponse) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
		if s.limited.exceeded {
			code = http.StatusRequestEntityTooLarge
		}
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *snapshotResponse) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.WriteHeader(http.StatusOK)
	}
	return s.ResponseWriter.Write(b)
}

// warnUnauthenticatedPeers warns when the peer port can be reached from
// other hosts and does not authenticate its callers: whoever reaches it can
// claim any member's id, and write to the cluster or stall it.
func warnUnauthenticatedPeers(lg *zap.Logger, addr net.Addr, clientCertAuth bool) {
	if clientCertAuth {
		return
	}
	if tcp, ok := addr.(*net.TCPAddr); ok && tcp.IP.IsLoopback() {
		return
	}
	lg.Warn("the peer port listens beyond loopback without --peer-client-cert-auth: anyone who can reach it can pose as a member and write to the cluster or disrupt it; on a network you do not fully trust, use mutual TLS (see docs/SECURITY.md)",
		zap.Stringer("peer-listen-addr", addr))
}
