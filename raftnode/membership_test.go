package raftnode

import (
	"errors"
	"reflect"
	"testing"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

func addNode(id uint64, url string) *raftpb.ConfChange {
	return &raftpb.ConfChange{Type: raftpb.ConfChangeAddNode.Enum(), NodeId: proto.Uint64(id), Context: encodeContext([]string{url})}
}

func addLearner(id uint64, url string) *raftpb.ConfChange {
	return &raftpb.ConfChange{Type: raftpb.ConfChangeAddLearnerNode.Enum(), NodeId: proto.Uint64(id), Context: encodeContext([]string{url})}
}

func removeNode(id uint64) *raftpb.ConfChange {
	return &raftpb.ConfChange{Type: raftpb.ConfChangeRemoveNode.Enum(), NodeId: proto.Uint64(id)}
}

func TestMembershipCheck(t *testing.T) {
	m := newMembership()
	for _, cc := range []*raftpb.ConfChange{addNode(1, "http://127.0.0.1:1"), addNode(2, "http://127.0.0.1:2"), addNode(3, "http://127.0.0.1:3"), removeNode(3), addLearner(5, "http://127.0.0.1:5")} {
		if err := m.check(cc); err != nil {
			t.Fatalf("setup %v: %v", cc, err)
		}
		m.apply(cc)
	}
	cases := []struct {
		name string
		cc   *raftpb.ConfChange
		want error
	}{
		{"new member", addNode(4, "http://127.0.0.1:4"), nil},
		{"new learner", addLearner(4, "http://127.0.0.1:4"), nil},
		{"id zero", addNode(0, "http://127.0.0.1:4"), ErrInvalidMemberID},
		{"existing voter as voter", addNode(2, "http://127.0.0.1:9"), ErrMemberExists},
		{"existing id as learner", addLearner(2, "http://127.0.0.1:9"), ErrMemberExists},
		{"promote learner", addNode(5, "http://127.0.0.1:5"), nil},
		{"removed id", addNode(3, "http://127.0.0.1:9"), ErrMemberRemoved},
		{"URL in use", addNode(6, "http://127.0.0.1:2"), ErrPeerURLExists},
		{"no URL", &raftpb.ConfChange{Type: raftpb.ConfChangeAddNode.Enum(), NodeId: proto.Uint64(6), Context: []byte("not json")}, ErrInvalidPeerURL},
		{"update", &raftpb.ConfChange{Type: raftpb.ConfChangeUpdateNode.Enum(), NodeId: proto.Uint64(1), Context: encodeContext([]string{"http://127.0.0.1:11"})}, nil},
		{"update to a used URL", &raftpb.ConfChange{Type: raftpb.ConfChangeUpdateNode.Enum(), NodeId: proto.Uint64(1), Context: encodeContext([]string{"http://127.0.0.1:2"})}, ErrPeerURLExists},
		{"update unknown", &raftpb.ConfChange{Type: raftpb.ConfChangeUpdateNode.Enum(), NodeId: proto.Uint64(9), Context: encodeContext([]string{"http://127.0.0.1:19"})}, ErrMemberNotFound},
		{"remove member", removeNode(2), nil},
		{"remove unknown", removeNode(9), ErrMemberNotFound},
		{"remove removed", removeNode(3), ErrMemberRemoved},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := m.check(c.cc)
			if (c.want == nil) != (err == nil) || (c.want != nil && !errors.Is(err, c.want)) {
				t.Fatalf("check = %v, want %v", err, c.want)
			}
		})
	}

	last := newMembership()
	last.apply(addNode(1, "http://127.0.0.1:1"))
	last.apply(addLearner(2, "http://127.0.0.1:2"))
	if err := last.check(removeNode(1)); !errors.Is(err, ErrLastVoter) {
		t.Fatalf("removing the last voter: %v, want ErrLastVoter", err)
	}
	if err := last.check(removeNode(2)); err != nil {
		t.Fatalf("removing a learner beside the last voter: %v", err)
	}
}

func TestEnvelopeRoundTrip(t *testing.T) {
	m := newMembership()
	m.apply(addNode(1, "http://127.0.0.1:1"))
	m.apply(addNode(7, "https://host.example:2380"))
	m.apply(addLearner(8, "http://127.0.0.1:8"))
	m.applyAttributes(attributes{ID: 7, Name: "seven", ClientURLs: []string{"http://127.0.0.1:17", "http://127.0.0.1:27"}})
	m.apply(addNode(3, "http://127.0.0.1:3"))
	m.apply(removeNode(3))
	app := []byte("state machine bytes\x00\xff")

	got, gotApp, streamed, err := decodeEnvelope(append(envelopeHeader(envelopeMagic, m), app...))
	if err != nil || streamed {
		t.Fatalf("decode: streamed=%v err=%v", streamed, err)
	}
	if string(gotApp) != string(app) {
		t.Fatalf("app data = %q, want %q", gotApp, app)
	}
	if !reflect.DeepEqual(got.list(), m.list()) || !got.isRemoved(3) || got.isRemoved(1) {
		t.Fatalf("members = %v removed=%v, want %v with 3 removed", got.list(), got.removed, m.list())
	}

	got, gotApp, streamed, err = decodeEnvelope(envelopeHeader(streamedEnvelopeMagic, m))
	if err != nil || !streamed || len(gotApp) != 0 || !reflect.DeepEqual(got.list(), m.list()) {
		t.Fatalf("streamed envelope: members %v, %d data bytes, streamed=%v, err=%v", got.list(), len(gotApp), streamed, err)
	}

	for name, data := range map[string][]byte{
		"no magic":               []byte("hello"),
		"truncated":              envelopeHeader(envelopeMagic, m)[:8],
		"streamed carrying data": append(envelopeHeader(streamedEnvelopeMagic, m), 'x'),
	} {
		if _, _, _, err := decodeEnvelope(data); !errors.Is(err, errBadEnvelope) {
			t.Errorf("%s: err = %v, want errBadEnvelope", name, err)
		}
	}
}

func TestValidatePeerURL(t *testing.T) {
	good := []string{"http://127.0.0.1:12379", "https://node.example:2380", "http://[::1]:2380", "http://127.0.0.1:1", "http://127.0.0.1:65535"}
	bad := []string{"", "127.0.0.1:2380", "ftp://127.0.0.1:2380", "http://127.0.0.1", "http://:2380",
		"http://u:p@127.0.0.1:2380", "http://127.0.0.1:2380/raft", "http://127.0.0.1:2380/", "http://127.0.0.1:2380?x=1", "http://127.0.0.1:2380#f", "http://%zz:1",
		"http://127.0.0.1:0", "http://127.0.0.1:00", "http://127.0.0.1:65536", "http://127.0.0.1:99999", "http://127.0.0.1:18446744073709551617",
		"http://127.1:2380", "http://127.0.0.01:2380", "http://0x7f.0.0.1:2380", "http://2130706433:2380", "http://017700000001:2380"}
	for _, u := range good {
		if err := ValidatePeerURL(u); err != nil {
			t.Errorf("ValidatePeerURL(%q) = %v, want nil", u, err)
		}
	}
	for _, u := range bad {
		if err := ValidatePeerURL(u); !errors.Is(err, ErrInvalidPeerURL) {
			t.Errorf("ValidatePeerURL(%q) = %v, want ErrInvalidPeerURL", u, err)
		}
	}
}

func TestAttributesRoundTrip(t *testing.T) {
	a := attributes{ID: 42, Name: "n", ClientURLs: []string{"http://127.0.0.1:1"}}
	got, err := unmarshalAttributes(a.marshal())
	if err != nil || !reflect.DeepEqual(got, a) {
		t.Fatalf("round trip = %+v, %v", got, err)
	}
	if _, err := unmarshalAttributes(append(a.marshal()[:3:3], 0xff)); err == nil {
		t.Fatal("truncated attributes decoded")
	}
}

func TestUnusedIDAfterTheLargest(t *testing.T) {
	for _, tc := range []struct {
		members, removed []uint64
		want             uint64
	}{
		{[]uint64{1, 2, 3}, nil, 4},
		{[]uint64{1, 2}, []uint64{3}, 4},
		{[]uint64{1, MaxMemberID - 1}, nil, MaxMemberID},
		// Ids an older version accepted: the smallest unused one instead
		// of an overflow to 0.
		{[]uint64{1, 2, 1<<64 - 1}, []uint64{3}, 4},
		{[]uint64{2, MaxMemberID}, nil, 1},
	} {
		m := newMembership()
		for _, id := range tc.members {
			m.members[id] = Member{ID: id}
		}
		for _, id := range tc.removed {
			m.removed[id] = struct{}{}
		}
		n := &Node{}
		n.view.Store(m)
		if got := n.unusedID(); got != tc.want {
			t.Errorf("members %v, removed %v: unusedID = %d, want %d", tc.members, tc.removed, got, tc.want)
		}
	}
}

func TestPeerAddrSpellings(t *testing.T) {
	same := [][2]string{
		{"http://127.0.0.1:1", "http://127.1:1"},
		{"http://127.0.0.1:1", "http://127.0.0.01:1"},
		{"http://127.0.0.1:1", "http://0x7F.0.0.1:1"},
		{"http://127.0.0.1:1", "http://2130706433:1"},
		{"http://127.0.0.1:1", "http://[::ffff:127.0.0.1]:1"},
		{"http://127.0.0.1:1", "https://127.0.0.1:01"},
		{"http://node.example:1", "http://NODE.example.:1"},
	}
	differ := [][2]string{
		{"http://127.0.0.1:1", "http://127.0.0.1:2"},
		{"http://127.0.0.1:1", "http://127.0.0.2:1"},
		{"http://127.0.0.1:1", "http://[::1]:1"},
		{"http://127.0.0.1:1", "http://127.0.0.08:1"}, // not octal: a name
		{"http://a.example:1", "http://b.example:1"},
	}
	read := func(u string) peerAddr {
		a, err := literalPeerAddr(u)
		if err != nil {
			t.Fatalf("%s: %v", u, err)
		}
		return a
	}
	for _, p := range same {
		if !read(p[0]).sameEndpoint(read(p[1])) {
			t.Errorf("%s and %s: different endpoints, want the same", p[0], p[1])
		}
	}
	for _, p := range differ {
		if read(p[0]).sameEndpoint(read(p[1])) {
			t.Errorf("%s and %s: the same endpoint, want different", p[0], p[1])
		}
	}
}

func TestValidateRefusesOneAddressTwice(t *testing.T) {
	cfg := Config{ID: 1, DataDir: t.TempDir(), ElectionTicks: 10, HeartbeatTicks: 1,
		Peers: []string{"http://127.0.0.1:2380", "http://[::ffff:127.0.0.1]:2380"}}
	if err := cfg.Validate(); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("Validate = %v, want ErrInvalidConfig", err)
	}
}
