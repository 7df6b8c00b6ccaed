package raftnode

import (
	"context"
	"errors"
	"fmt"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// AddMember adds a voting member with the given id and peer URL, and returns
// once the change is applied on this node.
func (n *Node) AddMember(ctx context.Context, id uint64, peerURL string) error {
	if err := ValidatePeerURL(peerURL); err != nil {
		return err
	}
	cc := &raftpb.ConfChange{
		Type:    raftpb.ConfChangeAddNode.Enum(),
		NodeId:  proto.Uint64(id),
		Context: []byte(peerURL),
	}
	return n.changeMembership(ctx, cc)
}

// RemoveMember removes a member and returns once the change is applied on
// this node. Removing this node itself makes it stop after the change.
func (n *Node) RemoveMember(ctx context.Context, id uint64) error {
	cc := &raftpb.ConfChange{
		Type:   raftpb.ConfChangeRemoveNode.Enum(),
		NodeId: proto.Uint64(id),
	}
	return n.changeMembership(ctx, cc)
}

func (n *Node) changeMembership(ctx context.Context, cc *raftpb.ConfChange) error {
	// Check against the current table first for a clear answer; the Ready
	// loop checks again when the change is applied, which is what counts.
	if err := n.view.Load().check(cc); err != nil {
		return err
	}
	// Raft refuses a second configuration change while one is pending, and
	// silently turns it into an empty entry; serialising this node's changes
	// avoids that from this node.
	n.confMu.Lock()
	defer n.confMu.Unlock()

	reqID := n.idGen.Next()
	cc.Id = proto.Uint64(reqID)
	applied := n.confWait.Register(reqID)
	// Unregisters the waiter on every early return; a no-op once triggered.
	defer n.confWait.Trigger(reqID, nil)
	unknown := fmt.Errorf("%w: the configuration change may or may not be applied", ErrTimeout)
	req := confChangeRequest{cc: cc, result: make(chan error, 1)}
	select {
	case n.confChangeC <- req:
	case <-ctx.Done():
		return contextError(ctx)
	case <-n.stopc:
		return ErrStopped
	}
	select {
	case err := <-req.result:
		if err != nil {
			return err
		}
	case <-ctx.Done():
		return unknown
	case <-n.stopc:
		return ErrStopped
	}
	select {
	case res := <-applied:
		if err, ok := res.(error); ok {
			return err
		}
		return nil
	case <-ctx.Done():
		return unknown
	case <-n.stopc:
		return ErrStopped
	}
}

// contextError turns a context's end into the node's errors.
func contextError(ctx context.Context) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return ErrTimeout
	}
	return ctx.Err()
}
