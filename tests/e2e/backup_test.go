//go:build unix

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/raftkv/raftkv/backup"
	"github.com/raftkv/raftkv/client"
	"github.com/raftkv/raftkv/kvstore"
)

// ackedWrite is a write the cluster acknowledged, with its revision.
type ackedWrite struct {
	key      string
	revision uint64
}

// TestBackupRestoreIntoNewCluster takes a backup with raftkv snapshot save
// while writers keep writing, restores it into a brand-new three-node
// cluster with raftkv snapshot restore, and checks that the new cluster
// holds exactly the backup: every key, value and revision, at the backup's
// revision, with every write acknowledged at or before that revision and
// none after it. New writes then continue after the backup's revision, and
// a watch from before it is told its history is gone.
func TestBackupRestoreIntoNewCluster(t *testing.T) {
	src := startCluster(t, 3)
	c, err := client.New([]string{clientURLOf(src.members[0]), clientURLOf(src.members[1]), clientURLOf(src.members[2])})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	// Steady writers, each on keys of its own, each key written once.
	ctx, stop := context.WithCancel(context.Background())
	var mu sync.Mutex
	var acked []ackedWrite
	unknown := map[string]bool{} // outcome unknown: may or may not be in
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				key := fmt.Sprintf("load/%d/%05d", g, i)
				res, err := c.Put(ctx, []byte(key), []byte("v-"+key), client.Condition{})
				mu.Lock()
				switch {
				case err == nil:
					acked = append(acked, ackedWrite{key, res.Revision})
				default:
					unknown[key] = true
				}
				mu.Unlock()
			}
		}()
	}
	ackedCount := func() int { mu.Lock(); defer mu.Unlock(); return len(acked) }
	if err := eventually(leaderTimeout, func() error {
		if n := ackedCount(); n < 200 {
			return fmt.Errorf("only %d writes acknowledged", n)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "cluster.backup")
	// From a follower, to show any member serves a backup.
	follower := src.members[0]
	for _, m := range src.members {
		if leaderSeenBy(m) != m.id {
			follower = m
			break
		}
	}
	save := runRaftkv(t, dir, nil, "snapshot", "save", "--endpoints", clientURLOf(follower), "-o", "json", file)
	if save.code != 0 {
		t.Fatalf("snapshot save: exit %d: %s%s", save.code, save.stdout, save.stderr)
	}
	// Writes go on during and after the backup.
	after := ackedCount()
	if err := eventually(leaderTimeout, func() error {
		if n := ackedCount(); n < after+100 {
			return fmt.Errorf("only %d writes acknowledged since the backup", n-after)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	stop()
	wg.Wait()

	var saved struct {
		File string `json:"file"`
		backup.Info
	}
	if err := json.Unmarshal([]byte(save.stdout), &saved); err != nil {
		t.Fatalf("snapshot save -o json: %q: %v", save.stdout, err)
	}
	// The file says the same, and holds every write acknowledged at or
	// before its revision and none after.
	var kvs []kvstore.KeyValue
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	info, err := backup.Verify(f, func(kv kvstore.KeyValue) error { kvs = append(kvs, kv); return nil })
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	if info.SHA256 != saved.SHA256 || info.Revision != saved.Revision || info.StateHash != saved.StateHash {
		t.Fatalf("the file: %+v; save printed %+v", info, saved.Info)
	}
	inBackup := map[string]kvstore.KeyValue{}
	for _, kv := range kvs {
		inBackup[string(kv.Key)] = kv
	}
	before := 0
	for _, w := range acked {
		kv, ok := inBackup[w.key]
		switch {
		case w.revision <= info.Revision && (!ok || kv.ModRevision != w.revision || string(kv.Value) != "v-"+w.key):
			t.Fatalf("%s, acknowledged at revision %d, is not in the backup at revision %d as written: %+v (present %v)", w.key, w.revision, info.Revision, kv, ok)
		case w.revision > info.Revision && ok:
			t.Fatalf("%s, acknowledged at revision %d, is in the backup at revision %d", w.key, w.revision, info.Revision)
		}
		if w.revision <= info.Revision {
			before++
		}
	}
	if before < 200 || before == len(acked) {
		t.Fatalf("%d of %d acknowledged writes are in the backup: the load did not go on around it", before, len(acked))
	}
	t.Logf("backup at revision %d: %d keys, %d bytes; %d writes acknowledged around it, %d with unknown outcome",
		info.Revision, info.Keys, info.Size, len(acked), len(unknown))

	// A brand-new cluster from the backup.
	dst := restoreCluster(t, file, 3)
	want, _ := json.Marshal(kvs)
	for _, m := range dst.members {
		var got []kvstore.KeyValue
		mc, err := client.New([]string{clientURLOf(m)})
		if err != nil {
			t.Fatal(err)
		}
		for kv, err := range mc.ListAll(context.Background(), nil, client.ListOptions{Consistency: client.Serializable}) {
			if err != nil {
				t.Fatalf("list on %s: %v", m.name, err)
			}
			got = append(got, kvstore.KeyValue{Key: kv.Key, Item: kvstore.Item{Value: kv.Value,
				CreateRevision: kv.CreateRevision, ModRevision: kv.ModRevision, Version: kv.Version}})
		}
		mc.Close()
		if g, _ := json.Marshal(got); string(g) != string(want) {
			t.Fatalf("%s holds %d keys that differ from the backup's %d", m.name, len(got), len(kvs))
		}
		st := statusWithHash(t, m)
		if st.StateHash != info.StateHash || st.Revision != info.Revision {
			t.Fatalf("%s: state hash %s at revision %d; the backup: %s at %d", m.name, st.StateHash, st.Revision, info.StateHash, info.Revision)
		}
		if st.ClusterID == info.ClusterID {
			t.Fatalf("%s: the restored cluster has the old cluster's id %s", m.name, st.ClusterID)
		}
	}
	// New writes continue after the backup's revision.
	mustPut(t, dst.members[0], "after-restore", "yes")
	r, err := get(dst.members[1], "v1/kv/after-restore", false)
	if err != nil || r.status != http.StatusOK {
		t.Fatalf("read after restore: %v %v", r, err)
	}
	if rev := statusOf(t, dst.members[1]).Revision; rev <= info.Revision {
		t.Fatalf("revision %d after a write on the restored cluster; the backup's was %d", rev, info.Revision)
	}
	// History before the backup is gone: a watch from its revision gets 410.
	w, err := do(http.MethodGet, clientURLOf(dst.members[0])+"/v1/watch/load/?prefix=true&from="+strconv.FormatUint(info.Revision, 10), "")
	if err != nil || w.status != http.StatusGone || !strings.Contains(w.body, `"code":"compacted"`) {
		t.Fatalf("a watch from the backup's revision: %v %v, want 410 compacted", w, err)
	}
}

// TestRestoreRefusals: restore checks the file before it writes, and never
// writes into a data dir that holds anything.
func TestRestoreRefusals(t *testing.T) {
	src := startCluster(t, 1)
	mustPut(t, src.members[0], "k", "v")
	dir := t.TempDir()
	file := filepath.Join(dir, "b.backup")
	// A bare file name: its temporary file goes beside it in the working
	// directory, not in $TMPDIR (where the rename could cross devices).
	r := runRaftkv(t, dir, []string{"TMPDIR=" + filepath.Join(dir, "no-such-dir")}, "snapshot", "save", "--endpoints", clientURLOf(src.members[0]), "b.backup")
	if r.code != 0 || !strings.Contains(r.stdout, "saved b.backup: revision") || !strings.Contains(r.stdout, "2 keys") {
		t.Fatalf("snapshot save b.backup: exit %d: %s%s", r.code, r.stdout, r.stderr)
	}
	if leftovers, _ := filepath.Glob(filepath.Join(dir, ".b.backup.*")); len(leftovers) != 0 {
		t.Fatalf("save left %v", leftovers)
	}
	if r := runRaftkv(t, dir, nil, "snapshot", "save", "--endpoints", clientURLOf(src.members[0]), dir); r.code != 2 {
		t.Fatalf("snapshot save into a directory: exit %d, %q; want 2", r.code, r.stderr)
	}
	good, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	cluster := "--cluster=http://127.0.0.1:1001,http://127.0.0.1:1002,http://127.0.0.1:1003"
	for _, c := range []struct {
		name string
		data []byte
		want string
	}{
		{"truncated", good[:len(good)-5], "backup is truncated"},
		{"corrupt", func() []byte { b := []byte(string(good)); b[len(b)/2] ^= 1; return b }(), "backup is"},
		{"not a backup", []byte("hello"), "not a raftkv backup"},
	} {
		bad := filepath.Join(dir, strings.ReplaceAll(c.name, " ", "-"))
		if err := os.WriteFile(bad, c.data, 0o600); err != nil {
			t.Fatal(err)
		}
		st := runRaftkv(t, dir, nil, "snapshot", "status", bad)
		data := filepath.Join(dir, "data-"+strings.ReplaceAll(c.name, " ", "-"))
		rs := runRaftkv(t, dir, nil, "snapshot", "restore", bad, "--id", "1", cluster, "--data-dir", data)
		for _, r := range []result{st, rs} {
			if r.code != 1 || !strings.Contains(r.stderr, c.want) {
				t.Fatalf("%s file: exit %d, %q; want 1 and %q", c.name, r.code, r.stderr, c.want)
			}
		}
		if _, err := os.Stat(data); !os.IsNotExist(err) {
			t.Fatalf("restore of a %s file left %s: %v", c.name, data, err)
		}
	}
	full := filepath.Join(dir, "full")
	if err := os.MkdirAll(filepath.Join(full, "something"), 0o700); err != nil {
		t.Fatal(err)
	}
	r = runRaftkv(t, dir, nil, "snapshot", "restore", file, "--id", "1", cluster, "--data-dir", full)
	if r.code == 0 || !strings.Contains(r.stderr, "not empty") {
		t.Fatalf("restore into a non-empty dir: exit %d, %q", r.code, r.stderr)
	}
	if names, _ := os.ReadDir(full); len(names) != 1 {
		t.Fatalf("the non-empty dir was changed: %v", names)
	}
	if r := runRaftkv(t, dir, nil, "snapshot", "restore", file, "--id", "4", cluster, "--data-dir", filepath.Join(dir, "d4")); r.code != 2 {
		t.Fatalf("restore with an id outside --cluster: exit %d, %q; want 2", r.code, r.stderr)
	}
}

// restoreCluster seeds size data dirs from the backup in file with raftkv
// snapshot restore and starts a cluster on them, with new ports. It writes
// nothing: the cluster holds the backup and no more.
func restoreCluster(t *testing.T, file string, size int) *cluster {
	t.Helper()
	return startClusterWith(t, clusterSpec{size: size, prepare: func(m *member) {
		r := runRaftkv(t, t.TempDir(), nil, "snapshot", "restore", file, "--id", strconv.Itoa(m.id), "--cluster", m.cluster, "--data-dir", m.dataDir)
		if r.code != 0 {
			t.Fatalf("snapshot restore --id %d: exit %d: %s%s", m.id, r.code, r.stdout, r.stderr)
		}
	}})
}

// TestREADMEBackupExample runs the README's backup and restore example as
// written, on a cluster whose members work where the script runs and keep
// their data in the Procfile's raftkv-<id> dirs: the backup, then, with the
// cluster stopped, the restore loop, then the members started again on the
// restored dirs (the README's make run), which hold the value.
func TestREADMEBackupExample(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster")
	}
	dir := t.TempDir()
	c := startClusterWith(t, clusterSpec{size: 3, dir: dir, procfileDirs: true, probe: true})
	endpoints := "RAFTKV_ENDPOINTS=" + clientURLs(c.members...)
	out := runDocScriptIn(t, dir, docBlock(t, "README.md", "snapshot save raftkv.backup"), endpoints)
	if !strings.Contains(out, "saved raftkv.backup: revision") || !strings.Contains(out, "state hash") {
		t.Fatalf("the README's backup example printed %q", out)
	}
	for _, m := range c.members {
		m.proc.Stop(t)
	}
	var script []string
	restarted := false
	for line := range strings.Lines(docBlock(t, "README.md", "snapshot restore raftkv.backup")) {
		if strings.TrimSpace(line) == "make run" {
			restarted = true
			continue
		}
		for i, port := range []string{"12379", "22379", "32379"} {
			line = strings.ReplaceAll(line, "http://127.0.0.1:"+port, c.members[i].peerURL)
		}
		script = append(script, line)
	}
	if !restarted {
		t.Fatal("the README's restore example does not start the cluster again with make run")
	}
	runDocScriptIn(t, dir, strings.Join(script, ""))
	if _, err := os.Stat(filepath.Join(dir, "old", "raftkv-1", "member")); err != nil {
		t.Fatalf("the old data dirs were not set aside: %v", err)
	}
	for _, m := range c.members {
		c.launch(m)
	}
	for _, m := range c.members {
		if err := c.waitUp(m); err != nil {
			t.Fatal(err)
		}
	}
	r := runRaftkv(t, dir, []string{endpoints}, "get", "color")
	if r.code != 0 || strings.TrimSpace(r.stdout) != "blue" {
		t.Fatalf("get color on the restored cluster: exit %d, %q %q", r.code, r.stdout, r.stderr)
	}
}

func clientURLOf(m *member) string { return "http://127.0.0.1:" + strconv.Itoa(m.port) }

// statusWithHash is m's /v1/status?hash=true, read with the client's
// status type.
func statusWithHash(t *testing.T, m *member) client.Status {
	t.Helper()
	c, err := client.New([]string{clientURLOf(m)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var st client.Status
	err = eventually(leaderTimeout, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		st, err = c.HashOf(ctx, clientURLOf(m))
		return err
	})
	if err != nil {
		t.Fatalf("status of %s: %v", m.name, err)
	}
	return st
}
