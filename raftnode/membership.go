package raftnode

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"go.etcd.io/raft/v3/raftpb"

	"github.com/raftkv/raftkv/internal/codec"
)

// Member is one member of the cluster. PeerURLs come with the configuration
// change that added it; Name and ClientURLs are published by the member
// itself once it runs.
type Member struct {
	ID         uint64   `json:"id"`
	Name       string   `json:"name"`
	PeerURLs   []string `json:"peer_urls"`
	ClientURLs []string `json:"client_urls"`
	IsLearner  bool     `json:"is_learner"`
}

// Started reports whether the member has run and published itself.
func (m Member) Started() bool { return m.Name != "" || len(m.ClientURLs) > 0 }

func (m Member) clone() Member {
	m.PeerURLs = slices.Clone(m.PeerURLs)
	m.ClientURLs = slices.Clone(m.ClientURLs)
	return m
}

// confChangeContext is the JSON a raftkv configuration change carries.
type confChangeContext struct {
	PeerURLs []string `json:"peer_urls"`
}

func encodeContext(peerURLs []string) []byte {
	b, _ := json.Marshal(confChangeContext{PeerURLs: peerURLs}) // cannot fail on strings
	return b
}

// peerURLsOf reads the peer URLs of an add or update; a change whose context
// cannot be read carries none, which check refuses on every replica alike.
func peerURLsOf(cc *raftpb.ConfChange) []string {
	var c confChangeContext
	if json.Unmarshal(cc.GetContext(), &c) != nil {
		return nil
	}
	return c.PeerURLs
}

// membership is the replicated member table: which ids are members, their
// URLs and attributes, and which ids were removed (raft never lets an id
// come back). It is changed only by committed entries, so every replica
// holds the same table at the same log index, and it travels inside
// snapshots.
type membership struct {
	members map[uint64]Member
	removed map[uint64]struct{}
}

func newMembership() *membership {
	return &membership{members: map[uint64]Member{}, removed: map[uint64]struct{}{}}
}

func (m *membership) clone() *membership {
	c := &membership{members: make(map[uint64]Member, len(m.members)), removed: maps.Clone(m.removed)}
	for id, mem := range m.members {
		c.members[id] = mem.clone()
	}
	return c
}

// list returns the members ordered by id.
func (m *membership) list() []Member {
	out := make([]Member, 0, len(m.members))
	for _, id := range slices.Sorted(maps.Keys(m.members)) {
		out = append(out, m.members[id].clone())
	}
	return out
}

func (m *membership) isRemoved(id uint64) bool {
	_, ok := m.removed[id]
	return ok
}

func (m *membership) voters() int {
	n := 0
	for _, mem := range m.members {
		if !mem.IsLearner {
			n++
		}
	}
	return n
}

// urlOwner returns the member other than id that uses u, if any.
func (m *membership) urlOwner(u string, id uint64) (uint64, bool) {
	for other, mem := range m.members {
		if other != id && slices.Contains(mem.PeerURLs, u) {
			return other, true
		}
	}
	return 0, false
}

// check reports why cc cannot be applied to the table, or nil. It is called
// both before proposing (for a quick, clear answer) and when the change is
// applied (the authoritative decision, since two proposals may race). It only
// looks things up in the table, so every replica, whatever its version,
// decides alike; the URLs' syntax is checked before proposing.
func (m *membership) check(cc *raftpb.ConfChange) error {
	id := cc.GetNodeId()
	if id == 0 {
		return ErrInvalidMemberID
	}
	if m.isRemoved(id) {
		return ErrMemberRemoved
	}
	cur, exists := m.members[id]
	switch cc.GetType() {
	case raftpb.ConfChangeAddNode, raftpb.ConfChangeAddLearnerNode:
		if exists {
			// Adding a learner as a voter is raft's promotion.
			if cc.GetType() == raftpb.ConfChangeAddNode && cur.IsLearner {
				return nil
			}
			return ErrMemberExists
		}
		return m.checkPeerURLs(id, peerURLsOf(cc))
	case raftpb.ConfChangeUpdateNode:
		if !exists {
			return ErrMemberNotFound
		}
		return m.checkPeerURLs(id, peerURLsOf(cc))
	case raftpb.ConfChangeRemoveNode:
		if !exists {
			return ErrMemberNotFound
		}
		if !cur.IsLearner && m.voters() == 1 {
			return ErrLastVoter
		}
		return nil
	default:
		return fmt.Errorf("%w: %s", errUnsupportedConfChange, cc.GetType())
	}
}

func (m *membership) checkPeerURLs(id uint64, urls []string) error {
	if len(urls) == 0 {
		return fmt.Errorf("%w: no peer URL", ErrInvalidPeerURL)
	}
	for _, u := range urls {
		if other, ok := m.urlOwner(u, id); ok {
			return fmt.Errorf("%w by member %d", ErrPeerURLExists, other)
		}
	}
	return nil
}

// apply records a change that check accepted.
func (m *membership) apply(cc *raftpb.ConfChange) {
	id := cc.GetNodeId()
	switch cc.GetType() {
	case raftpb.ConfChangeAddNode, raftpb.ConfChangeAddLearnerNode:
		if cur, ok := m.members[id]; ok { // a promotion
			cur.IsLearner = false
			m.members[id] = cur
			return
		}
		m.members[id] = Member{ID: id, PeerURLs: peerURLsOf(cc), IsLearner: cc.GetType() == raftpb.ConfChangeAddLearnerNode}
	case raftpb.ConfChangeUpdateNode:
		cur := m.members[id]
		cur.PeerURLs = peerURLsOf(cc)
		m.members[id] = cur
	case raftpb.ConfChangeRemoveNode:
		delete(m.members, id)
		m.removed[id] = struct{}{}
	}
}

// applyAttributes records what a member published about itself; a member
// that is gone by then is ignored.
func (m *membership) applyAttributes(a attributes) {
	if cur, ok := m.members[a.ID]; ok {
		cur.Name, cur.ClientURLs = a.Name, a.ClientURLs
		m.members[a.ID] = cur
	}
}

// ValidatePeerURL accepts an absolute http or https URL with a host and a
// port and nothing else, which is what rafthttp can dial.
func ValidatePeerURL(s string) error {
	if s == "" {
		return fmt.Errorf("%w: empty", ErrInvalidPeerURL)
	}
	if !strings.Contains(s, "://") {
		// url.Parse would say "first path segment in URL cannot contain
		// colon" of host:port.
		return fmt.Errorf("%w %s: want http://host:port (or https://)", ErrInvalidPeerURL, s)
	}
	u, err := url.Parse(s)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // without url.Parse's quoted copy of s
		}
		return fmt.Errorf("%w %s: %w", ErrInvalidPeerURL, s, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("%w %s: the scheme must be http or https", ErrInvalidPeerURL, s)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.Path != "" {
		return fmt.Errorf("%w %s: want scheme://host:port and nothing else", ErrInvalidPeerURL, s)
	}
	if _, port, err := net.SplitHostPort(u.Host); err != nil || port == "" || u.Hostname() == "" {
		return fmt.Errorf("%w %s: it needs a host and a port", ErrInvalidPeerURL, s)
	}
	// url.Parse takes any digits as a port; nothing listens on 0, and
	// nothing can above 65535.
	if p, err := strconv.ParseUint(u.Port(), 10, 16); err != nil || p == 0 {
		return fmt.Errorf("%w %s: the port must be from 1 to 65535", ErrInvalidPeerURL, s)
	}
	// Go reads "127.1" or "127.0.0.01" as a name, which no lookup finds:
	// rafthttp could never dial it, though curl and ping would.
	if _, err := netip.ParseAddr(u.Hostname()); err != nil {
		if ip, ok := parseInetAton(u.Hostname()); ok {
			return fmt.Errorf("%w %s: write the address as %s", ErrInvalidPeerURL, s, ip)
		}
	}
	return nil
}

// validatePeerURLs checks a member's peer URL list.
func validatePeerURLs(urls []string) error {
	if len(urls) == 0 {
		return fmt.Errorf("%w: at least one is needed", ErrInvalidPeerURL)
	}
	for i, u := range urls {
		if err := ValidatePeerURL(u); err != nil {
			return err
		}
		if slices.Contains(urls[:i], u) {
			return fmt.Errorf("%w %s: listed twice", ErrInvalidPeerURL, u)
		}
	}
	return nil
}

// The data of every raft snapshot raftkv makes is an envelope: the member
// table followed by the state machine's own snapshot. When a snapshot is sent
// to a follower, the state machine's part is streamed beside the message (as
// etcd streams its database) and the envelope travels without it, marked by a
// different magic.
var (
	envelopeMagic         = []byte("RKVN2")
	streamedEnvelopeMagic = []byte("RKVS2")
)

var (
	errBadEnvelope           = errors.New("corrupt snapshot envelope")
	errUnsupportedConfChange = errors.New("unsupported configuration change")
)

// envelopeHeader encodes an envelope up to the state machine's part. Callers
// write the two parts where they lie rather than join them: that part is the
// whole store.
func envelopeHeader(magic []byte, m *membership) []byte {
	buf := make([]byte, 0, len(magic)+128*len(m.members)+16)
	buf = append(buf, magic...)
	members := m.list()
	buf = codec.AppendUvarint(buf, uint64(len(members)))
	for _, mem := range members {
		buf = appendMember(buf, mem)
	}
	removed := slices.Sorted(maps.Keys(m.removed))
	buf = codec.AppendUvarint(buf, uint64(len(removed)))
	for _, id := range removed {
		buf = codec.AppendUvarint(buf, id)
	}
	return buf
}

func appendMember(buf []byte, m Member) []byte {
	buf = codec.AppendUvarint(buf, m.ID)
	buf = codec.AppendString(buf, m.Name)
	buf = appendStrings(buf, m.PeerURLs)
	buf = appendStrings(buf, m.ClientURLs)
	learner := uint64(0)
	if m.IsLearner {
		learner = 1
	}
	return codec.AppendUvarint(buf, learner)
}

func appendStrings(buf []byte, ss []string) []byte {
	buf = codec.AppendUvarint(buf, uint64(len(ss)))
	for _, s := range ss {
		buf = codec.AppendString(buf, s)
	}
	return buf
}

func readStrings(d *codec.Decoder) []string {
	n := d.Uvarint()
	if d.Err() != nil || n == 0 || n > uint64(len(d.Rest())) {
		return nil
	}
	out := make([]string, 0, n)
	for range n {
		out = append(out, string(d.Bytes()))
	}
	return out
}

func readMember(d *codec.Decoder) Member {
	m := Member{ID: d.Uvarint(), Name: string(d.Bytes())}
	m.PeerURLs = readStrings(d)
	m.ClientURLs = readStrings(d)
	m.IsLearner = d.Uvarint() == 1
	return m
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
		mem := readMember(d)
		m.members[mem.ID] = mem
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

// attributesMarker starts a normal log entry that is not a state machine
// command but a member publishing its name and client URLs; the node applies
// it to the member table and never hands it to the state machine (see
// frame.go).
const attributesMarker = frameAttributes

// attributes is what a member publishes about itself.
type attributes struct {
	ID         uint64
	Name       string
	ClientURLs []string
}

func (a attributes) marshal() []byte {
	buf := []byte{attributesMarker}
	buf = codec.AppendUvarint(buf, a.ID)
	buf = codec.AppendString(buf, a.Name)
	return appendStrings(buf, a.ClientURLs)
}

func isAttributes(data []byte) bool {
	kind, _ := decodeFrame(data)
	return kind == kindAttributes
}

func unmarshalAttributes(data []byte) (attributes, error) {
	if !isAttributes(data) {
		return attributes{}, errors.New("not an attributes entry")
	}
	d := codec.NewDecoder(data[1:])
	a := attributes{ID: d.Uvarint(), Name: string(d.Bytes())}
	a.ClientURLs = readStrings(d)
	if err := d.Err(); err != nil {
		return attributes{}, fmt.Errorf("attributes entry: %w", err)
	}
	return a, nil
}
