package raftnode

import (
	"bytes"
	"fmt"
	"slices"
	"testing"
)

func TestDecodeFrame(t *testing.T) {
	attrs := attributes{ID: 2, Name: "n2", ClientURLs: []string{"http://a"}}.marshal()
	tests := []struct {
		name string
		data []byte
		kind entryKind
		want []byte
	}{
		{"raft's empty entry", nil, kindNone, nil},
		{"a framed command", []byte{frameCommand, 2, 'x'}, kindCommand, []byte{2, 'x'}},
		{"a framed command that starts like attributes", []byte{frameCommand, frameAttributes, 1}, kindCommand, []byte{frameAttributes, 1}},
		{"a framed command that starts like a frame", []byte{frameCommand, frameCommand}, kindCommand, []byte{frameCommand}},
		{"a framed empty command", []byte{frameCommand}, kindNone, nil},
		{"attributes", attrs, kindAttributes, attrs},
		{"an unframed command (version 1)", []byte{1, 'k'}, kindCommand, []byte{1, 'k'}},
		{"an unframed command (version 2)", []byte{2, 'k'}, kindCommand, []byte{2, 'k'}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kind, data := decodeFrame(tt.data)
			if kind != tt.kind || !bytes.Equal(data, tt.want) {
				t.Fatalf("decodeFrame(%x) = %v, %x; want %v, %x", tt.data, kind, data, tt.kind, tt.want)
			}
		})
	}
	for _, cmd := range [][]byte{{frameAttributes, 9}, {frameCommand}, {frameCommand, frameCommand}, {2, 'x'}, {0}} {
		if kind, data := decodeFrame(frameCommandData(cmd)); kind != kindCommand || !bytes.Equal(data, cmd) {
			t.Fatalf("command %x, as the log holds it, reads back as %v, %x", cmd, kind, data)
		}
	}
	// A command that needs no frame goes into the log as it is, readable by
	// builds that predate the framing.
	if cmd := []byte{2, 'x'}; &frameCommandData(cmd)[0] != &cmd[0] {
		t.Fatal("a command that starts with its version was copied into a frame")
	}
}

// TestCommandsCannotPassForRaftnodeEntries: whatever its first byte, a
// state machine command reaches the state machine unchanged, when applied
// and when replayed after a restart, and never touches the member table.
func TestCommandsCannotPassForRaftnodeEntries(t *testing.T) {
	dir := t.TempDir()
	self := closedURL(t)
	peers := []string{self}
	cmds := []string{
		string(attributes{ID: 1, Name: "forged", ClientURLs: []string{"http://forged"}}.marshal()),
		string([]byte{frameCommand, 'x'}),
		"plain",
	}
	n, a, err := startTestNode(t, dir, self[len("http://"):], peers, false)
	if err != nil {
		t.Fatal(err)
	}
	soleLeader(t, n)
	for _, c := range cmds {
		proposeAndWait(t, n, a, c)
	}
	check := func(n *Node, a *applied) {
		t.Helper()
		waitFor(t, "apply", func() error {
			if got, _ := a.snapshot(); !slices.Equal(got, cmds) {
				return fmt.Errorf("applied %q, want %q", got, cmds)
			}
			return nil
		})
		for _, m := range n.Members() {
			if m.Name == "forged" || slices.Contains(m.ClientURLs, "http://forged") {
				t.Fatalf("a command changed the member table: %+v", m)
			}
		}
	}
	check(n, a)
	n.Stop()
	n, a, err = startTestNode(t, dir, self[len("http://"):], peers, false)
	if err != nil {
		t.Fatal(err)
	}
	check(n, a)
}
