package raftnode

// StreamedSnapshotHeader is the data of a snapshot message whose state
// machine data follows it in the body, as sendSnapshot builds it.
func StreamedSnapshotHeader(members []Member) []byte {
	m := newMembership()
	for _, mem := range members {
		m.members[mem.ID] = mem
	}
	return envelopeHeader(streamedEnvelopeMagic, m)
}
