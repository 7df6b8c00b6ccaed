//go:build unix

package e2e

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/raftkv/raftkv/internal/waltest"
	"github.com/raftkv/raftkv/wire"
)

// Crash-point and disk tests: each runs real `raftkv serve` processes, stops
// or kills one, damages its data dir the way a crash or a bad disk would, and
// starts it again. See docs/ROBUSTNESS.md, "Crash safety, disk and bad input".
// A data dir that belongs to another member id is covered by
// TestServeRejectsOtherMembersDataDir (flags_test.go).

// frameOf returns the last entry record whose command mentions key.
func frameOf(t *testing.T, frames []waltest.Frame, key string) waltest.Frame {
	t.Helper()
	for i := len(frames) - 1; i >= 0; i-- {
		if e := frames[i].Entry; e != nil && bytes.Contains(e.GetData(), []byte(key)) {
			return frames[i]
		}
	}
	t.Fatalf("no WAL entry holds the key %q", key)
	return waltest.Frame{}
}

// lastWALSegment returns the newest *.wal file of a data dir.
func lastWALSegment(t *testing.T, dataDir string) string {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(dataDir, "member", "wal", "*.wal"))
	if err != nil || len(names) == 0 {
		t.Fatalf("no WAL segment in %s (%v)", dataDir, err)
	}
	slices.Sort(names)
	return names[len(names)-1]
}

func statusOf(t *testing.T, m *member) wire.Status {
	t.Helper()
	r, err := do(http.MethodGet, m.url("v1/status"), "")
	if err != nil || r.status != http.StatusOK {
		t.Fatalf("GET /v1/status on %s: %v %v", m.name, r, err)
	}
	var st wire.Status
	if err := json.Unmarshal([]byte(r.body), &st); err != nil {
		t.Fatalf("GET /v1/status on %s: %v", m.name, err)
	}
	return st
}

// mustBeAbsent checks that a linearizable read of key on m answers 404.
func mustBeAbsent(t *testing.T, m *member, key string) {
	t.Helper()
	var r response
	err := eventually(leaderTimeout, func() error {
		var err error
		r, err = get(m, key, false)
		if retryable(r, err) {
			return fmt.Errorf("GET %s: %v %v", key, r, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if r.status != http.StatusNotFound {
		t.Fatalf("GET %s on %s: got %v, want 404", key, m.name, r)
	}
}

// TestTornWALTailIsRepaired kills a node and cuts its WAL in the middle of
// the record of the last write, as a crash in the middle of that write would
// leave it. The write was in flight: the cut models a crash before its fsync,
// so it was never acknowledged. Every write acknowledged before it was
// fsynced before its answer, so its record lies wholly before the cut. The
// node must repair the tail and start, serve every acknowledged write, not
// serve the torn one, and take and keep new writes.
//
// The cut is found by parsing the segment's records (length field, record,
// padding) from the start up to the first zero length field, the
// preallocated end, and truncating the file halfway through the entry
// record of the in-flight write: everything after it, its hard state
// included, is lost with it, exactly as if the process had died there.
func TestTornWALTailIsRepaired(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a node")
	}
	c := startCluster(t, 1)
	m := c.members[0]
	w := &writes{values: map[string]string{}}
	for range 20 {
		w.put(t, m)
	}
	const inFlight = "in-flight-at-the-crash"
	mustPut(t, m, inFlight, "never acknowledged")
	m.proc.Kill(t)

	seg := lastWALSegment(t, m.dataDir)
	frames := waltest.Frames(t, seg)
	torn := frameOf(t, frames, inFlight)
	for _, k := range w.keys {
		if f := frameOf(t, frames, k); f.End > torn.Off {
			t.Fatalf("the record of acknowledged %s ends at %d, after the in-flight write's record starts (%d)", k, f.End, torn.Off)
		}
	}
	cut := torn.Off + (torn.End-torn.Off)/2
	t.Logf("cutting %s at %d, inside the record [%d, %d) of the in-flight write", filepath.Base(seg), cut, torn.Off, torn.End)
	if err := os.Truncate(seg, cut); err != nil {
		t.Fatal(err)
	}

	c.restart(m)
	if !strings.Contains(m.proc.Log(), "repairing torn wal tail") {
		t.Error(`the restarted node did not log "repairing torn wal tail"`)
	}
	if broken, _ := filepath.Glob(seg + ".broken"); len(broken) != 1 {
		t.Error("no .broken copy of the torn segment was kept")
	}
	w.check(t, m, false)
	mustBeAbsent(t, m, inFlight)

	// The repaired WAL takes writes, and the next start needs no repair.
	for range 3 {
		w.put(t, m)
	}
	m.proc.Terminate(t)
	c.restart(m)
	if strings.Contains(m.proc.Log(), "repairing") {
		t.Error("the start after the repair repaired the WAL again")
	}
	w.check(t, m, false)
	mustBeAbsent(t, m, inFlight)
}

// TestCorruptWALRecordIsRefused flips one bit in the data of an early
// record, one that was fsynced and acknowledged long before the end of the
// WAL. That is not a torn write: the node must refuse to start, with exit
// code 1 and one line naming the WAL's CRC mismatch, and leave its data dir
// exactly as it was, rather than cut the WAL there and lose what follows.
func TestCorruptWALRecordIsRefused(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a node")
	}
	c := startCluster(t, 1)
	m := c.members[0]
	w := &writes{values: map[string]string{}}
	for range 10 {
		w.put(t, m)
	}
	m.proc.Terminate(t)

	seg := lastWALSegment(t, m.dataDir)
	f := frameOf(t, waltest.Frames(t, seg), w.keys[2])
	// The record's last byte is the entry's last, the value's last byte.
	waltest.FlipBits(t, seg, f.DataEnd-1, 0x01)
	before := listDir(t, m.dataDir)

	r := runRaftkv(t, c.dir, nil, m.args()...)
	t.Logf("exit %d, stderr: %s", r.code, r.stderr)
	if r.code != 1 {
		t.Errorf("exit code %d, want 1", r.code)
	}
	lines := strings.Split(strings.TrimRight(r.stderr, "\n"), "\n")
	last := lines[len(lines)-1]
	if !strings.HasPrefix(last, "raftkv: ") || !strings.Contains(last, "wal") || !strings.Contains(last, "crc mismatch") {
		t.Errorf("the last line of stderr does not name the WAL's CRC mismatch: %q", last)
	}
	if len(lines) != 1 {
		t.Errorf("stderr has %d lines, want one:\n%s", len(lines), r.stderr)
	}
	if after := listDir(t, m.dataDir); !slices.Equal(before, after) {
		t.Errorf("the data dir changed:\nbefore %v\nafter  %v", before, after)
	}
}

var snapName = regexp.MustCompile(`^([0-9a-f]{16})-([0-9a-f]{16})\.snap$`)

// snapIndex returns the raft index in a snapshot file's name.
func snapIndex(t *testing.T, path string) uint64 {
	t.Helper()
	m := snapName.FindStringSubmatch(filepath.Base(path))
	if m == nil {
		t.Fatalf("%s is not a snapshot file name", path)
	}
	i, err := strconv.ParseUint(m[2], 16, 64)
	if err != nil {
		t.Fatal(err)
	}
	return i
}

var appliedAtStart = regexp.MustCompile(`restarting from the data dir.*"snapshot-index": (\d+),`)

// TestCorruptSnapshotFallsBackToOlder makes a node write several snapshots
// (keeping every WAL file, so the WAL still covers the older ones; with WAL
// files purged the fallback can fail, see TestPurgeKeepsTheWALOfKeptSnapshots
// in raftnode), stops it, and flips a bit in the newest snapshot file. The node must start from
// the next older snapshot, replay the WAL from there, serve every
// acknowledged write, and set the broken file aside as .broken.
func TestCorruptSnapshotFallsBackToOlder(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a node")
	}
	c := startCluster(t, 1, "--snapshot-count", "10", "--max-snapshots", "3", "--max-wals", "0")
	m := c.members[0]
	w := &writes{values: map[string]string{}}
	for range 35 {
		w.put(t, m)
	}
	snapDir := filepath.Join(m.dataDir, "member", "snap")
	var snaps []string
	if err := eventually(leaderTimeout, func() error {
		snaps, _ = filepath.Glob(filepath.Join(snapDir, "*.snap"))
		if len(snaps) < 2 {
			return fmt.Errorf("%d snapshot files, want at least 2", len(snaps))
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	m.proc.Terminate(t)

	snaps, _ = filepath.Glob(filepath.Join(snapDir, "*.snap"))
	slices.Sort(snaps)
	newest, older := snaps[len(snaps)-1], snaps[len(snaps)-2]
	fi, err := os.Stat(newest)
	if err != nil {
		t.Fatal(err)
	}
	waltest.FlipBits(t, newest, fi.Size()/2, 0x01)
	t.Logf("corrupted %s; the next older snapshot is at index %d", filepath.Base(newest), snapIndex(t, older))

	c.restart(m)
	w.check(t, m, false)
	if _, err := os.Stat(newest); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the corrupt snapshot is still a .snap file (stat: %v)", err)
	}
	if _, err := os.Stat(newest + ".broken"); err != nil {
		t.Errorf("the corrupt snapshot was not set aside as .broken: %v", err)
	}
	// The node restarted from the older snapshot's index: the WAL was
	// replayed from there.
	got := appliedAtStart.FindStringSubmatch(m.proc.Log())
	if got == nil {
		t.Fatal(`the restarted node did not log "restarting from the data dir ... snapshot-index: N"`)
	}
	if want := strconv.FormatUint(snapIndex(t, older), 10); got[1] != want {
		t.Errorf("raft restarted at applied index %s, want the older snapshot's %s", got[1], want)
	}
	w.put(t, m)
	w.check(t, m, true)
}

// TestWipedMemberRestartedWithoutJoin restarts a member of a running
// three-node cluster under its old id after its data dir was wiped, without
// --join. Bootstrapping a fresh log under an id that already voted and
// acknowledged entries could elect a leader that lacks acknowledged writes,
// so the node must refuse: exit code 1, one line telling the operator to
// remove the member and add it back under a new id, nothing written to the
// data dir; and the cluster must keep serving every acknowledged write.
func TestWipedMemberRestartedWithoutJoin(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster")
	}
	c := startCluster(t, 3)
	victim := c.members[2]
	w := &writes{values: map[string]string{}}
	for i := range 10 {
		w.put(t, c.members[i%3])
	}
	// The peers know the victim ran once it published its attributes.
	if err := eventually(leaderTimeout, func() error {
		r, err := do(http.MethodGet, c.members[0].url("v1/members"), "")
		if err != nil || r.status != http.StatusOK {
			return fmt.Errorf("GET /v1/members: %v %v", r, err)
		}
		var l memberList
		if err := json.Unmarshal([]byte(r.body), &l); err != nil {
			return err
		}
		if m, ok := l.member(victim.id); !ok || !m.Started {
			return fmt.Errorf("member %d is not listed as started: %s", victim.id, r.body)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	victim.proc.Kill(t)
	if err := os.RemoveAll(victim.dataDir); err != nil {
		t.Fatal(err)
	}

	r := runRaftkv(t, c.dir, nil, victim.args()...)
	t.Logf("exit %d, stderr: %s", r.code, r.stderr)
	checkRejected(t, r, "already ran in this cluster")
	if !strings.Contains(r.stderr, "under a new id") {
		t.Errorf("the refusal does not tell the operator to add the node back under a new id: %s", r.stderr)
	}
	if _, err := os.Stat(victim.dataDir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the refused node created its data dir (stat: %v)", err)
	}

	for i := range 6 {
		w.put(t, c.members[i%2])
	}
	for _, m := range c.members[:2] {
		w.check(t, m, false)
	}
}
