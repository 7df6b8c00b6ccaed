package main

import (
	"bufio"
	"cmp"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/fileutil"

	"github.com/spf13/cobra"
	"go.uber.org/zap"
	"golang.org/x/term"

	"github.com/raftkv/raftkv/backup"
	"github.com/raftkv/raftkv/client"
	"github.com/raftkv/raftkv/kvstore"
	"github.com/raftkv/raftkv/raftnode"
)

func newSnapshotCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "snapshot COMMAND",
		Short: "Save, check and restore backups",
		Long: `Back up a running cluster to a file, check a backup file, and restore one into
the data dirs of a new cluster (docs/BACKUP.md).`,
	}
	commandGroup(cmd, "save, status or restore")
	cmd.AddCommand(newSnapshotSaveCommand(), newSnapshotStatusCommand(), newSnapshotRestoreCommand())
	return cmd
}

func newSnapshotSaveCommand() *cobra.Command {
	var serializable bool
	cmd := &cobra.Command{
		Use:   "save FILE",
		Short: "Save a backup of the whole store to FILE",
		Long: `Save a backup of the whole store: every key with its value and revisions, at one
revision, with the member table. Any member serves it; by default it holds
every write acknowledged before the command started (--serializable: what the
member answering has applied).

The backup is checked as it arrives and written to a temporary file beside
FILE, synced, and renamed to FILE only once its checksum holds: FILE is
either the whole backup or untouched (an existing FILE is replaced). On a
terminal a progress line is shown on stderr. --timeout bounds the wait for
the answer and any pause in the stream, not the whole backup. Needs admin
when access control is on.`,
		Example: `  raftkv snapshot save backup.rkv
  raftkv snapshot save --endpoints http://10.0.0.2:2379 /backups/$(date +%F).rkv`,
		Args: cobra.ExactArgs(1),
	}
	f := addClientFlags(cmd)
	cmd.Flags().BoolVar(&serializable, "serializable", false, "take the answering member's applied state without asking the leader")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		c, p, err := f.client(cmd)
		if err != nil {
			return err
		}
		defer c.Close()
		consistency := client.Linearizable
		if serializable {
			consistency = client.Serializable
		}
		info, err := saveSnapshot(cmd, c, consistency, f.timeout, args[0])
		if err != nil {
			return err
		}
		if p.json {
			return p.object(snapshotJSON{File: args[0], Info: info})
		}
		return p.text(fmt.Appendf(nil, "saved %s: revision %d, %s, %s (%d bytes), sha256 %s",
			args[0], info.Revision, keysCount(info.Keys), humanBytes(info.Size), info.Size, info.SHA256))
	}
	return cmd
}

// snapshotJSON is what save and status print with -o json.
type snapshotJSON struct {
	File string `json:"file"`
	backup.Info
}

// saveSnapshot streams a backup into path through a temporary file,
// checking it on the way.
func saveSnapshot(cmd *cobra.Command, c *client.Client, consistency client.Consistency, idle time.Duration, path string) (info backup.Info, err error) {
	// The temporary file goes beside path, so that the rename is atomic: a
	// bare name is in the working directory, not the system's temp dir.
	dir, base := filepath.Split(path)
	dir = cmp.Or(dir, ".")
	if base == "" {
		return info, usagef("%s names a directory; give the backup file's name", path)
	}
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		return info, usagef("%s is a directory; give the backup file's name", path)
	}
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return info, fmt.Errorf("%s: the directory %s does not exist", path, dir)
	}
	ctx := cmd.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	// On SIGINT or SIGTERM the stream is cut and the temporary file
	// removed; a second signal kills as usual.
	ctx, stopSignals := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stopSignals()
	defer context.AfterFunc(ctx, stopSignals)()
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	// The stream may last long; what must not is a pause in it.
	stalled := fmt.Errorf("%w: no data for %v (--timeout)", client.ErrUnavailable, idle)
	watchdog := time.AfterFunc(idle, func() { cancel(stalled) })
	defer watchdog.Stop()

	s, err := c.Snapshot(ctx, consistency)
	if err != nil {
		if cause := context.Cause(ctx); cause != nil && errors.Is(cause, stalled) {
			return info, cause
		}
		return info, err
	}
	defer s.Body.Close()

	tmp, err := os.CreateTemp(dir, "."+base+".*.part")
	if err != nil {
		return info, err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	var got atomic.Int64
	body := &progressReader{r: s.Body, n: &got, onRead: func() { watchdog.Reset(idle) }}
	stop := showBackupProgress(cmd, &got, s.Size)
	out := bufio.NewWriterSize(tmp, 1<<20)
	info, err = backup.Verify(io.TeeReader(body, out), nil)
	stop()
	if err != nil {
		switch cause := context.Cause(ctx); {
		case cause == nil:
		case errors.Is(cause, stalled):
			return info, cause
		default:
			return info, fmt.Errorf("interrupted; %s is unchanged", path)
		}
		return info, fmt.Errorf("backup from %s: %w", s.Endpoint, err)
	}
	if err := out.Flush(); err != nil {
		return info, err
	}
	if err := tmp.Sync(); err != nil {
		return info, err
	}
	if err := tmp.Close(); err != nil {
		return info, err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return info, err
	}
	return info, syncDir(dir)
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := fileutil.OpenDir(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return fileutil.Fsync(d)
}

// progressReader counts what it reads and tells onRead.
type progressReader struct {
	r      io.Reader
	n      *atomic.Int64
	onRead func()
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	if n > 0 {
		p.n.Add(int64(n))
		p.onRead()
	}
	return n, err
}

// showBackupProgress rewrites a progress line on stderr while the backup streams,
// when stderr is a terminal, and returns the function that ends it.
func showBackupProgress(cmd *cobra.Command, got *atomic.Int64, size int64) (stop func()) {
	w, ok := cmd.ErrOrStderr().(*os.File)
	if !ok || !term.IsTerminal(int(w.Fd())) {
		return func() {}
	}
	line := func() {
		n := got.Load()
		if size > 0 {
			fmt.Fprintf(w, "\rsaving backup: %s of %s (%d%%)   ", humanBytes(n), humanBytes(size), n*100/size)
		} else {
			fmt.Fprintf(w, "\rsaving backup: %s   ", humanBytes(n))
		}
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				line()
			case <-done:
				line()
				fmt.Fprintln(w)
				return
			}
		}
	}()
	return func() { close(done); <-finished }
}

func newSnapshotStatusCommand() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "status FILE",
		Short: "Check a backup file and show what it holds",
		Long: `Read a whole backup file, check every record and its checksum, and show its
revision, number of keys, size, the SHA-256 of the file and the hash of its
contents: the state_hash that GET /v1/status?hash=true shows on a cluster at
the same revision. A damaged or truncated file is an error (exit 1) that says
where it goes wrong. It reads the file only.`,
		Example: `  raftkv snapshot status backup.rkv
  raftkv snapshot status -o json backup.rkv | jq .revision`,
		Args: cobra.ExactArgs(1),
	}
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json")
	usageErrors(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if output != "text" && output != "json" {
			return usagef("--output %q: use text or json", output)
		}
		info, err := readBackupFile(args[0], nil)
		if err != nil {
			return err
		}
		p := &printer{w: cmd.OutOrStdout(), json: output == "json"}
		if p.json {
			return p.object(snapshotJSON{File: args[0], Info: info})
		}
		tw := newTable(p)
		fmt.Fprintf(tw, "file\t%s\n", args[0])
		fmt.Fprintf(tw, "revision\t%d\n", info.Revision)
		fmt.Fprintf(tw, "keys\t%d\n", info.Keys)
		fmt.Fprintf(tw, "size\t%s (%d bytes)\n", humanBytes(info.Size), info.Size)
		fmt.Fprintf(tw, "sha256\t%s\n", info.SHA256)
		fmt.Fprintf(tw, "state hash\t%s\n", info.StateHash)
		fmt.Fprintf(tw, "taken\t%s from member %d of cluster %s\n", info.CreatedAt.Format(time.RFC3339), info.MemberID, info.ClusterID)
		var members []string
		for _, m := range info.Members {
			kind := ""
			if m.IsLearner {
				kind = " (learner)"
			}
			members = append(members, fmt.Sprintf("%d=%s%s", m.ID, strings.Join(m.PeerURLs, ","), kind))
		}
		fmt.Fprintf(tw, "members\t%s\n", orDash(strings.Join(members, " ")))
		return tw.Flush()
	}
	return cmd
}

// readBackupFile checks the backup at path, calling fn with each key.
func readBackupFile(path string, fn func(kvstore.KeyValue) error) (backup.Info, error) {
	f, err := os.Open(path)
	if err != nil {
		return backup.Info{}, err
	}
	defer f.Close()
	info, err := backup.Verify(f, fn)
	if err != nil {
		return backup.Info{}, fmt.Errorf("%s: %w", path, err)
	}
	return info, nil
}

func newSnapshotRestoreCommand() *cobra.Command {
	var dataDir, cluster, token, output string
	var id uint64
	cmd := &cobra.Command{
		Use:   "restore FILE",
		Short: "Seed a new member's data dir from a backup",
		Long: `Seed the data dir of one member of a new cluster from a backup file: run it once
per member, with the same FILE, --cluster and --initial-cluster-token and each
member's own --id and --data-dir, then start every member with
"raftkv serve" and the same --id, --cluster and --data-dir.

The new cluster holds exactly the backup's keys, values and revisions, and its
revisions continue from the backup's. Its cluster id is new (made from the
backup's checksum, the token and the peer URLs), so members of the old
cluster can never talk to it. The file is checked before anything is
written; --data-dir must be absent or empty, and is made whole or not at all.`,
		Example: `  raftkv snapshot restore backup.rkv --id 1 --data-dir raftkv-1 \
      --cluster http://127.0.0.1:12379,http://127.0.0.1:22379,http://127.0.0.1:32379`,
		Args: cobra.ExactArgs(1),
	}
	fl := cmd.Flags()
	fl.Uint64Var(&id, "id", 1, "the member's id: its position (from 1) in --cluster")
	fl.StringVar(&cluster, "cluster", "", "comma-separated peer URLs of the new cluster, in id order (required)")
	fl.StringVar(&dataDir, "data-dir", "", "the member's data dir to create (default raftkv-<id>)")
	fl.StringVar(&token, "initial-cluster-token", raftnode.DefaultClusterToken, "token that, with the peer URLs and the backup, makes the new cluster's id")
	fl.StringVarP(&output, "output", "o", "text", "output format: text or json")
	usageErrors(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if output != "text" && output != "json" {
			return usagef("--output %q: use text or json", output)
		}
		if cluster == "" {
			return usagef("--cluster is required: the new cluster's peer URLs, in id order")
		}
		if dataDir == "" {
			dataDir = fmt.Sprintf("raftkv-%d", id)
		}
		peers := strings.Split(cluster, ",")
		for i := range peers {
			peers[i] = strings.TrimSpace(peers[i])
		}
		start := time.Now()
		state, info, err := restoreState(args[0])
		if err != nil {
			return err
		}
		origin, err := hex.DecodeString(info.SHA256)
		if err != nil {
			return err
		}
		clusterID, err := raftnode.SeedDataDir(zap.NewNop(), raftnode.Seed{DataDir: dataDir, ID: id, Peers: peers,
			ClusterToken: token, Index: info.Revision, State: state, Origin: origin})
		if err != nil {
			if errors.Is(err, raftnode.ErrInvalidConfig) || errors.Is(err, raftnode.ErrInvalidPeerURL) {
				return &usageError{err}
			}
			return err
		}
		out := restoreJSON{DataDir: dataDir, ID: id, ClusterID: raftnode.FormatID(clusterID), Revision: info.Revision,
			Keys: info.Keys, StateHash: info.StateHash, Seconds: time.Since(start).Seconds()}
		p := &printer{w: cmd.OutOrStdout(), json: output == "json"}
		if p.json {
			return p.object(out)
		}
		return p.text(fmt.Appendf(nil, "restored %s at revision %d into %s: member %d of new cluster %s; start it with raftkv serve --id %d --cluster %s --data-dir %s",
			keysCount(out.Keys), out.Revision, dataDir, id, out.ClusterID, id, cluster, dataDir))
	}
	return cmd
}

// restoreJSON is what restore prints with -o json.
type restoreJSON struct {
	DataDir   string  `json:"data_dir"`
	ID        uint64  `json:"id"`
	ClusterID string  `json:"cluster_id"`
	Revision  uint64  `json:"revision"`
	Keys      uint64  `json:"keys"`
	StateHash string  `json:"state_hash"`
	Seconds   float64 `json:"seconds"`
}

// restoreState checks the backup at path and encodes its keys as the store
// snapshot a new member starts from, as they are read.
func restoreState(path string) ([]byte, backup.Info, error) {
	hdr, size, err := backupHeader(path)
	if err != nil {
		return nil, backup.Info{}, err
	}
	enc := kvstore.NewSnapshotEncoder(hdr.Revision, hdr.Keys, hdr.KVLeases(), int(size))
	info, err := readBackupFile(path, enc.Add)
	if err != nil {
		return nil, backup.Info{}, err
	}
	state, err := enc.Bytes()
	if err != nil {
		return nil, backup.Info{}, fmt.Errorf("%s: %w", path, err)
	}
	return state, info, nil
}

// backupHeader reads the header of the backup at path, and its size, to
// size what is built from it; nothing in it is trusted before the whole
// file is checked.
func backupHeader(path string) (backup.Header, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return backup.Header{}, 0, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return backup.Header{}, 0, err
	}
	r, err := backup.NewReader(f)
	if err != nil {
		return backup.Header{}, 0, fmt.Errorf("%s: %w", path, err)
	}
	return r.Header(), st.Size(), nil
}

// keysCount says "1 key" or "n keys".
func keysCount(n uint64) string {
	if n == 1 {
		return "1 key"
	}
	return fmt.Sprintf("%d keys", n)
}
