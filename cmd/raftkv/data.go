package main

import (
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/raftkv/raftkv/kvstore"
	"github.com/raftkv/raftkv/raftnode"
)

// errDamaged ends data verify when it found damage: exit code exitDamaged.
var errDamaged = errors.New("the data dir is damaged")

func newDataCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "data COMMAND",
		Short: "Inspect a node's data dir offline",
		Long: `Work on a node's data dir directly, without a running node or the network.
See docs/BACKUP.md.`,
	}
	commandGroup(cmd, "verify")
	cmd.AddCommand(newDataVerifyCommand())
	return cmd
}

func newDataVerifyCommand() *cobra.Command {
	var dataDir, output string
	cmd := &cobra.Command{
		Use:   "verify --data-dir DIR",
		Short: "Check a data dir's WAL and snapshots, and print what it holds",
		Long: `Check every record of the WAL (its framing and its CRC, chained across the
segments), every snapshot file (its CRC), the segments' metadata, and the
snapshot and member table a start would load; rebuild the store from the
snapshot and the committed entries after it, and print what the data dir
holds: the last index and term, the commit index, the snapshot, the members,
the number of keys, the store's revision and hash (the state_hash of
GET /v1/status?hash=true at the same revision). Then "ok", or each problem as
FILE: offset N: what.

It never writes: every file is opened read-only, nothing is repaired or
locked. Run it on a stopped node's data dir; on a running node's it still
only reads, but what it prints may be a moment old, and the WAL may end in a
write still in progress (a torn final record, reported as a note, as is
anything a start repairs by itself).

Exit 0 when healthy, 7 when the data dir is damaged, 1 when it holds no WAL
or cannot be read. With -o json the report is one JSON object.`,
		Example: `  raftkv data verify --data-dir raftkv-1
  raftkv data verify --data-dir raftkv-1 -o json | jq '.damage'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "text" && output != "json" {
				return usagef("--output %q: use text or json", output)
			}
			if dataDir == "" {
				return usagef("--data-dir is required")
			}
			v, err := verifyDataDir(dataDir)
			if err != nil {
				return err
			}
			p := &printer{w: cmd.OutOrStdout(), json: output == "json"}
			if err := v.print(p); err != nil {
				return err
			}
			if len(v.Damage) > 0 {
				return fmt.Errorf("%w: %d problem(s)", errDamaged, len(v.Damage))
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&dataDir, "data-dir", "", "the node's data dir (serve's --data-dir)")
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json")
	usageErrors(cmd)
	return cmd
}

// verifyReport is what data verify prints; in JSON, as it is.
type verifyReport struct {
	DataDir       string             `json:"data_dir"`
	MemberID      uint64             `json:"member_id"`
	ClusterID     string             `json:"cluster_id"`
	LastIndex     uint64             `json:"last_index"`
	LastTerm      uint64             `json:"last_term"`
	Term          uint64             `json:"term"`
	Commit        uint64             `json:"commit"`
	SnapshotIndex uint64             `json:"snapshot_index"`
	SnapshotTerm  uint64             `json:"snapshot_term"`
	SnapshotFile  string             `json:"snapshot_file,omitempty"`
	WALFiles      []string           `json:"wal_files"`
	SnapFiles     []string           `json:"snap_files"`
	Members       []raftnode.Member  `json:"members"`
	Removed       bool               `json:"removed"`
	Keys          int                `json:"keys"`
	Revision      uint64             `json:"revision"`
	StateHash     string             `json:"state_hash"`
	OK            bool               `json:"ok"`
	Damage        []raftnode.Finding `json:"damage"`
	Notes         []raftnode.Finding `json:"notes"`
}

// verifyDataDir inspects dir and rebuilds its store. raftnode reads the
// files; the store is kvstore's, which raftnode cannot import.
func verifyDataDir(dir string) (*verifyReport, error) {
	r, err := raftnode.InspectDataDir(dir)
	if err != nil {
		return nil, err
	}
	v := &verifyReport{
		DataDir: dir, MemberID: r.MemberID, ClusterID: raftnode.FormatID(r.ClusterID),
		LastIndex: r.LastIndex, LastTerm: r.LastTerm, Term: r.Term, Commit: r.Commit,
		SnapshotIndex: r.SnapshotIndex, SnapshotTerm: r.SnapshotTerm, SnapshotFile: r.SnapshotFile,
		WALFiles: r.WALFiles, SnapFiles: r.SnapFiles, Members: r.Members, Removed: r.Removed,
		Damage: r.Damage, Notes: r.Notes,
	}
	s, skipped, err := kvstore.Rebuild(r.StoreSnapshot, r.Committed)
	switch {
	case errors.Is(err, kvstore.ErrNewerCommand):
		v.Damage = append(v.Damage, raftnode.Finding{File: filepath.Join(dir, "member", "wal"), Offset: -1,
			What: err.Error() + "; a member of this version stops there: upgrade it"})
	case err != nil:
		// The file passed its CRC, so it was written this way.
		v.Damage = append(v.Damage, raftnode.Finding{File: r.SnapshotFile, Offset: -1, What: "the store's data does not decode: " + err.Error()})
	default:
		v.Keys = s.Len()
		v.StateHash, v.Revision = s.Hash()
	}
	walDir := filepath.Join(dir, "member", "wal")
	for _, index := range skipped {
		v.Notes = append(v.Notes, raftnode.Finding{File: walDir, Offset: -1,
			What: fmt.Sprintf("entry %d is not a store command; skipped, as every member skips it", index)})
	}
	v.OK = len(v.Damage) == 0
	// Empty lists, not null, for jq '.damage | length'.
	for _, l := range []*[]raftnode.Finding{&v.Damage, &v.Notes} {
		if *l == nil {
			*l = []raftnode.Finding{}
		}
	}
	return v, nil
}

func (v *verifyReport) print(p *printer) error {
	if p.json {
		return p.object(v)
	}
	tw := newTable(p)
	fmt.Fprintf(tw, "data dir\t%s\n", v.DataDir)
	fmt.Fprintf(tw, "member\t%d (cluster %s)\n", v.MemberID, v.ClusterID)
	fmt.Fprintf(tw, "wal\t%d segment(s), last index %d, term %d\n", len(v.WALFiles), v.LastIndex, v.LastTerm)
	fmt.Fprintf(tw, "hard state\tcommit %d, term %d\n", v.Commit, v.Term)
	if v.SnapshotFile != "" {
		fmt.Fprintf(tw, "snapshot\tindex %d, term %d (%s; %d snapshot file(s))\n", v.SnapshotIndex, v.SnapshotTerm, filepath.Base(v.SnapshotFile), len(v.SnapFiles))
	} else {
		fmt.Fprintf(tw, "snapshot\tnone (%d snapshot file(s))\n", len(v.SnapFiles))
	}
	fmt.Fprintf(tw, "store\t%s, revision %d, hash %s\n", keysCount(uint64(v.Keys)), v.Revision, orDash(v.StateHash))
	if v.Removed {
		fmt.Fprintf(tw, "removed\tthis member was removed from its cluster: it will not start on this data\n")
	}
	fmt.Fprintf(tw, "members\t%d\n", len(v.Members))
	if err := tw.Flush(); err != nil {
		return err
	}
	tw = newTable(p)
	fmt.Fprintln(tw, "  ID\tNAME\tLEARNER\tPEER-URLS\tCLIENT-URLS")
	for _, m := range v.Members {
		fmt.Fprintf(tw, "  %d\t%s\t%s\t%s\t%s\n", m.ID, orDash(m.Name), strconv.FormatBool(m.IsLearner),
			orDash(strings.Join(m.PeerURLs, ",")), orDash(strings.Join(m.ClientURLs, ",")))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	var lines [][]byte
	for _, n := range v.Notes {
		lines = append(lines, []byte("note: "+n.String()))
	}
	for _, d := range v.Damage {
		lines = append(lines, []byte(d.String()))
	}
	if v.OK {
		lines = append(lines, []byte("ok"))
	}
	return p.text(lines...)
}
