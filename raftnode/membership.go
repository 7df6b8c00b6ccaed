package raftnode

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/url"
	"slices"

	"go.etcd.io/raft/v3/raftpb"

	"github.com/raftkv/raftkv/internal/codec"
)

// Member is one member of the cluster.
type Member struct {
	ID      uint64 `json:"id"`
	PeerURL string `json:"peer_url"`
}

// membership is the replicated member table: which ids are members, their
// peer URLs, and which ids were removed (raft never lets an id come back). It
// is changed only by committed configuration changes, so every replica holds
// the same table at the same log index, and it travels inside snapshots.
type membership struct {
	members map[uint64]string
	removed map[uint64]struct{}
}

func newMembership() *membership {
	return &membership{members: map[uint64]string{}, removed: map[uint64]struct{}{}}
}

func (m *membership) clone() *membership {
	return &membership{members: maps.Clone(m.members), removed: maps.Clone(m.removed)}
}

// list returns the members ordered by id.
func (m *membership) list() []Member {
	out := make([]Member, 0, len(m.members))
	for _, id := range slices.Sorted(maps.Keys(m.members)) {
		out = append(out, Member{ID: id, PeerURL: m.members[id]})
	}
	return out
}

func (m *membership) isRemoved(id uint64) bool {
	_, ok := m.removed[id]
	return ok
}

// check reports why cc cannot be applied to the table, or nil. It is called
// both before proposing (for a quick, clear answer) and when the change is
// applied (the authoritative decision, since two proposals may race). It only
// looks things up in the table, so every replica, whatever its version,
// decides alike; the URL's syntax is checked before proposing.
func (m *membership) check(cc *raftpb.ConfChange) error {
	id := cc.GetNodeId()
	if id == 0 {
		return ErrInvalidMemberID
	}
	if m.isRemoved(id) {
		return fmt.Errorf("%w: %x", ErrMemberRemoved, id)
	}
	switch cc.GetType() {
	case raftpb.ConfChangeAddNode:
		if _, ok := m.members[id]; ok {
			return fmt.Errorf("%w: %x", ErrMemberExists, id)
		}
		peerURL := string(cc.GetContext())
		for other, u := range m.members {
			if u == peerURL {
				return fmt.Errorf("%w: %s is member %x", ErrPeerURLExists, peerURL, other)
			}
		}
	case raftpb.ConfChangeRemoveNode:
		if _, ok := m.members[id]; !ok {
			return fmt.Errorf("%w: %x", ErrMemberNotFound, id)
		}
		if len(m.members) == 1 {
			return ErrLastVoter
		}
	default:
		return fmt.Errorf("%w: %s", errUnsupportedConfChange, cc.GetType())
	}
	return nil
}

// apply records a change that check accepted.
func (m *membership) apply(cc *raftpb.ConfChange) {
	id := cc.GetNodeId()
	switch cc.GetType() {
	case raftpb.ConfChangeAddNode:
		m.members[id] = string(cc.GetContext())
	case raftpb.ConfChangeRemoveNode:
		delete(m.members, id)
		m.removed[id] = struct{}{}
	}
}

// ValidatePeerURL accepts an absolute http or https URL with a host and a
// port and nothing else, which is what rafthttp can dial.
func ValidatePeerURL(s string) error {
	if s == "" {
		return fmt.Errorf("%w: empty", ErrInvalidPeerURL)
	}
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("%w: %q: %w", ErrInvalidPeerURL, s, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("%w: %q: scheme must be http or https", ErrInvalidPeerURL, s)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.Path != "" {
		return fmt.Errorf("%w: %q: must be scheme://host:port only", ErrInvalidPeerURL, s)
	}
	if _, port, err := net.SplitHostPort(u.Host); err != nil || port == "" || u.Hostname() == "" {
		return fmt.Errorf("%w: %q: needs a host and a port", ErrInvalidPeerURL, s)
	}
	return nil
}

// The data of every raft snapshot raftkv makes is an envelope: the member
// table followed by the state machine's own snapshot. When a snapshot is sent
// to a follower, the state machine's part is streamed beside the message (as
// etcd streams its database) and the envelope travels without it, marked by a
// different magic.
var (
	envelopeMagic         = []byte("RKVN1")
	streamedEnvelopeMagic = []byte("RKVS1")
)

var (
	errBadEnvelope           = errors.New("raftnode: corrupt snapshot envelope")
	errUnsupportedConfChange = errors.New("raftnode: unsupported configuration change")
)

func encodeEnvelope(m *membership, appData []byte) []byte {
	return appendEnvelope(envelopeMagic, m, appData)
}

func appendEnvelope(magic []byte, m *membership, appData []byte) []byte {
	buf := make([]byte, 0, len(magic)+64*len(m.members)+len(appData)+16)
	buf = append(buf, magic...)
	members := m.list()
	buf = codec.AppendUvarint(buf, uint64(len(members)))
	for _, mem := range members {
		buf = codec.AppendUvarint(buf, mem.ID)
		buf = codec.AppendBytes(buf, []byte(mem.PeerURL))
	}
	removed := slices.Sorted(maps.Keys(m.removed))
	buf = codec.AppendUvarint(buf, uint64(len(removed)))
	for _, id := range removed {
		buf = codec.AppendUvarint(buf, id)
	}
	return append(buf, appData...)
}

// decodeEnvelope splits an envelope into the member table and the state
// machine's data. streamed reports an envelope whose state machine data was
// sent separately.
func decodeEnvelope(data []byte) (m *membership, appData []byte, streamed bool, err error) {
	var magic []byte
	switch {
	case bytes.HasPrefix(data, envelopeMagic):
		magic = envelopeMagic
	case bytes.HasPrefix(data, streamedEnvelopeMagic):
		magic, streamed = streamedEnvelopeMagic, true
	default:
		return nil, nil, false, fmt.Errorf("%w: bad magic", errBadEnvelope)
	}
	d := codec.NewDecoder(data[len(magic):])
	m = newMembership()
	for n := d.Uvarint(); n > 0 && d.Err() == nil; n-- {
		id := d.Uvarint()
		m.members[id] = string(d.Bytes())
	}
	for n := d.Uvarint(); n > 0 && d.Err() == nil; n-- {
		m.removed[d.Uvarint()] = struct{}{}
	}
	if err := d.Err(); err != nil {
		return nil, nil, false, fmt.Errorf("%w: %w", errBadEnvelope, err)
	}
	if streamed && len(d.Rest()) != 0 {
		return nil, nil, false, fmt.Errorf("%w: streamed envelope carries data", errBadEnvelope)
	}
	return m, d.Rest(), streamed, nil
}
