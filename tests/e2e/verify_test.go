//go:build unix

package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/raftkv/raftkv/internal/waltest"
)

// verifyJSON is the part of `raftkv data verify -o json` the test reads.
type verifyJSON struct {
	MemberID      uint64 `json:"member_id"`
	Commit        uint64 `json:"commit"`
	SnapshotIndex uint64 `json:"snapshot_index"`
	Members       []struct {
		ID   uint64 `json:"id"`
		Name string `json:"name"`
	} `json:"members"`
	Keys      int    `json:"keys"`
	Revision  uint64 `json:"revision"`
	StateHash string `json:"state_hash"`
	OK        bool   `json:"ok"`
}

// hashStatus is the part of GET /v1/status?hash=true the test reads.
type hashStatus struct {
	StateHash    string `json:"state_hash"`
	HashRevision uint64 `json:"hash_revision"`
}

func hashOf(m *member) (hashStatus, error) {
	var s hashStatus
	r, err := do(http.MethodGet, m.url("v1/status?hash=true"), "")
	if err != nil || r.status != http.StatusOK {
		return s, fmt.Errorf("GET /v1/status?hash=true on %s: %v %v", m.name, r, err)
	}
	return s, json.Unmarshal([]byte(r.body), &s)
}

// copyDataDirTree copies the files under src into a new directory.
func copyDataDirTree(t *testing.T, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "data")
	if err := os.CopyFS(dst, os.DirFS(src)); err != nil {
		t.Fatal(err)
	}
	return dst
}

// runVerify runs `raftkv data verify` on dataDir and checks that it left
// the dir exactly as it was.
func runVerify(t *testing.T, dir, dataDir string, args ...string) result {
	t.Helper()
	before := waltest.DirState(t, dataDir)
	r := runRaftkv(t, dir, nil, append([]string{"data", "verify", "--data-dir", dataDir}, args...)...)
	if after := waltest.DirState(t, dataDir); !slices.Equal(before, after) {
		t.Errorf("data verify changed %s:\nbefore %v\nafter  %v", dataDir, before, after)
	}
	return r
}

// TestDataVerify runs `raftkv data verify` on the data dir of a stopped
// member of a three-node cluster that took snapshots: it passes, and reports
// the member table, every key and the store hash the member served. Then a
// byte flipped in a WAL entry record makes it exit 7 naming the segment and
// the record's offset, and on a copy of the healthy dir a byte flipped in
// the newest snapshot makes it exit 7 naming the snapshot file. It never
// changes the dir.
func TestDataVerify(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster")
	}
	c := startCluster(t, 3, "--snapshot-count", "10")
	w := &writes{values: map[string]string{}}
	for i := range 30 {
		w.put(t, c.members[i%3])
	}
	victim := c.members[2]
	// Stop the victim once it has applied every write, with the hash it
	// serves then.
	var want hashStatus
	if err := eventually(leaderTimeout, func() error {
		lead, err := hashOf(c.members[0])
		if err != nil {
			return err
		}
		if want, err = hashOf(victim); err != nil {
			return err
		}
		if want != lead {
			return fmt.Errorf("%s is at %+v, %s at %+v", victim.name, want, c.members[0].name, lead)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	victim.proc.Terminate(t)
	healthy := copyDataDirTree(t, victim.dataDir)

	r := runVerify(t, c.dir, victim.dataDir, "-o", "json")
	t.Logf("healthy: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	var got verifyJSON
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatalf("data verify -o json: %v in %q", err, r.stdout)
	}
	if r.code != 0 || !got.OK || r.stderr != "" {
		t.Errorf("healthy dir: exit %d, ok %v, stderr %q; want 0, true, nothing", r.code, got.OK, r.stderr)
	}
	if got.MemberID != 3 || len(got.Members) != 3 || got.SnapshotIndex == 0 {
		t.Errorf("member %d, %d members, snapshot at %d: want member 3 of 3, a snapshot", got.MemberID, len(got.Members), got.SnapshotIndex)
	}
	// The writes and the cluster's probe write.
	if got.Keys != len(w.keys)+1 || got.StateHash != want.StateHash || got.Revision != want.HashRevision {
		t.Errorf("store: %d keys, hash %s at %d; want %d keys and the member's hash %s at %d",
			got.Keys, got.StateHash, got.Revision, len(w.keys)+1, want.StateHash, want.HashRevision)
	}
	text := runVerify(t, c.dir, victim.dataDir)
	t.Logf("healthy, text: exit %d\n%s%s", text.code, text.stdout, text.stderr)
	if text.code != 0 || !strings.HasSuffix(text.stdout, "\nok\n") {
		t.Errorf("healthy dir, text: exit %d, want 0 and a last line \"ok\":\n%s", text.code, text.stdout)
	}

	seg := lastWALSegment(t, victim.dataDir)
	f := frameOf(t, waltest.Frames(t, seg), w.keys[len(w.keys)-5])
	waltest.FlipBits(t, seg, f.DataEnd-1, 0x01)
	r = runVerify(t, c.dir, victim.dataDir)
	t.Logf("flipped WAL byte: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	wantLine := fmt.Sprintf("%s: offset %d: ", seg, f.Off)
	if r.code != 7 || !strings.Contains(r.stdout, "\n"+wantLine) || !strings.Contains(r.stderr, "damaged") {
		t.Errorf("flipped WAL byte: exit %d, want 7 and a line starting %q", r.code, wantLine)
	}

	snaps, err := filepath.Glob(filepath.Join(healthy, "member", "snap", "*.snap"))
	if err != nil || len(snaps) == 0 {
		t.Fatalf("no snapshot file in %s (%v)", healthy, err)
	}
	slices.Sort(snaps)
	newest := snaps[len(snaps)-1]
	fi, err := os.Stat(newest)
	if err != nil {
		t.Fatal(err)
	}
	waltest.FlipBits(t, newest, fi.Size()/2, 0x01)
	r = runVerify(t, c.dir, healthy)
	t.Logf("flipped snapshot byte: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	if r.code != 7 || !strings.Contains(r.stdout, "\n"+newest+": offset ") {
		t.Errorf("flipped snapshot byte: exit %d, want 7 and a line naming %s", r.code, newest)
	}
}
