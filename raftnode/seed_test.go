package raftnode

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"go.uber.org/zap/zaptest"
)

// TestSeedDataDir seeds a data dir and reads it back as a start would: the
// snapshot at the seed's index holding the state and the new member table,
// committed, with no entries after it.
func TestSeedDataDir(t *testing.T) {
	lg := zaptest.NewLogger(t)
	dir := filepath.Join(t.TempDir(), "raftkv-2")
	peers := []string{"http://127.0.0.1:1001", "http://127.0.0.1:1002", "http://127.0.0.1:1003"}
	seed := Seed{DataDir: dir, ID: 2, Peers: peers, ClusterToken: "t", Index: 42, State: []byte("state"), Origin: []byte("backup")}
	// What a restore of this dir that was killed leaves is removed.
	stale := filepath.Join(filepath.Dir(dir), ".raftkv-2.restore-123")
	if err := os.MkdirAll(filepath.Join(stale, "member"), 0o700); err != nil {
		t.Fatal(err)
	}
	clusterID, err := SeedDataDir(lg, seed)
	if err != nil {
		t.Fatal(err)
	}
	if clusterID == ClusterIDFor("t", peers) || clusterID != RestoredClusterID("t", peers, []byte("backup")) {
		t.Fatalf("cluster id %x: want one made from the backup, not the peers' own", clusterID)
	}
	if err := CheckDataDir(lg, dir, 2); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Fatalf("an interrupted restore's %s: %v, want it removed", stale, err)
	}
	st, ds, err := openStorage(lg, dir, 2, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer st.close()
	md := ds.snapshot.GetMetadata()
	if md.GetIndex() != 42 || md.GetTerm() != 1 || len(md.GetConfState().GetVoters()) != 3 || ds.fresh ||
		ds.hardState.GetCommit() != 42 || len(ds.entries) != 0 || ds.clusterID != clusterID {
		t.Fatalf("read back snapshot %v, hard state %v, %d entries, cluster %x", md, ds.hardState, len(ds.entries), ds.clusterID)
	}
	members, state, _, err := decodeEnvelope(ds.snapshot.GetData())
	if err != nil || string(state) != "state" || len(members.list()) != 3 || members.members[3].PeerURLs[0] != peers[2] {
		t.Fatalf("envelope: members %v, state %q, %v", members.list(), state, err)
	}

	// A data dir that holds anything is refused, and left as it is.
	if _, err := SeedDataDir(lg, seed); !errors.Is(err, ErrDataDirNotEmpty) {
		t.Fatalf("seeding it again: %v, want ErrDataDirNotEmpty", err)
	}
	// An empty one is used; no temporary dir is left beside it.
	empty := filepath.Join(t.TempDir(), "empty")
	if err := os.Mkdir(empty, 0o700); err != nil {
		t.Fatal(err)
	}
	seed.DataDir = empty
	if _, err := SeedDataDir(lg, seed); err != nil {
		t.Fatal(err)
	}
	if names, _ := os.ReadDir(filepath.Dir(empty)); len(names) != 1 {
		t.Fatalf("beside the data dir: %v", names)
	}
	for _, bad := range []Seed{
		{DataDir: filepath.Join(t.TempDir(), "x"), ID: 4, Peers: peers},
		{DataDir: filepath.Join(t.TempDir(), "x"), ID: 1, Peers: []string{"http://127.0.0.1:1", "http://127.0.0.1:1"}},
		{DataDir: filepath.Join(t.TempDir(), "x"), ID: 1, Peers: []string{"ftp://x"}},
	} {
		if _, err := SeedDataDir(lg, bad); err == nil {
			t.Fatalf("seeded %+v", bad)
		}
		if _, err := os.Stat(bad.DataDir); !os.IsNotExist(err) {
			t.Fatalf("a refused seed left %s: %v", bad.DataDir, err)
		}
	}
}
