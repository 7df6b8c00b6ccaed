package raftnode

import (
	"context"
	"net/http"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
)

// transportRaft is the face the node shows to rafthttp.
type transportRaft struct{ n *Node }

func (t transportRaft) Process(ctx context.Context, m *raftpb.Message) error {
	if err := t.n.checkMessage(m); err != nil {
		return err
	}
	return t.n.node.Step(ctx, m)
}

// errFromRemovedMember answers a removed member with 403, which its rafthttp
// pipeline reports to it as "removed from the cluster", so it stops.
type errFromRemovedMember struct{}

func (errFromRemovedMember) Error() string { return "message from a removed member" }

func (errFromRemovedMember) WriteTo(w http.ResponseWriter) {
	http.Error(w, "the sender was removed from the cluster", http.StatusForbidden)
}

func (t transportRaft) IsIDRemoved(id uint64) bool { return t.n.view.Load().isRemoved(id) }

func (t transportRaft) ReportUnreachable(id uint64) { t.n.node.ReportUnreachable(id) }

func (t transportRaft) ReportSnapshot(id uint64, status raft.SnapshotStatus) {
	t.n.node.ReportSnapshot(id, status)
}
