package raftnode

import "go.etcd.io/etcd/client/pkg/v3/types"

// StreamedSnapshotHeader is the data of a snapshot message whose state
// machine data follows it in the body, as sendSnapshot builds it.
func StreamedSnapshotHeader(members []Member) []byte {
	m := newMembership()
	for _, mem := range members {
		m.members[mem.ID] = mem
	}
	return envelopeHeader(streamedEnvelopeMagic, m)
}

// Dials reports whether the node's transport has member id as a peer.
func (n *Node) Dials(id uint64) bool { return n.transport.Get(types.ID(id)) != nil }
