//go:build linux

package server_test

import (
	"context"
	"errors"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/raftkv/raftkv/internal/testcluster"
	"github.com/raftkv/raftkv/kvstore"
)

// TestSnapshotWithoutFileDescriptorsIsRetried: a snapshot that cannot open
// its file because the process is out of descriptors (EMFILE, what a client
// flood used to cause) is retried later; the node does not stop. The test
// takes every free descriptor of its own process, so it must not run in
// parallel with others.
func TestSnapshotWithoutFileDescriptorsIsRetried(t *testing.T) {
	const snapshotCount = 20
	c := testcluster.New(t, testcluster.Config{Size: 1, SnapshotCount: snapshotCount})
	c.WaitLeader()
	srv := c.Server(1)
	put := func(i int) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := srv.KV().Put(ctx, []byte("k"+strconv.Itoa(i)), []byte("v"), kvstore.Condition{}, 0); err != nil {
			t.Fatalf("put %d: %v", i, err)
		}
	}
	put(0)
	before := srv.Node().Status().Snapshot

	// Take every free descriptor; writes go through the open WAL.
	var held []*os.File
	release := func() {
		for _, f := range held {
			f.Close()
		}
		held = nil
	}
	t.Cleanup(release)
	for {
		f, err := os.Open(os.DevNull)
		if errors.Is(err, syscall.EMFILE) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, f)
	}
	for i := 1; i <= 2*snapshotCount; i++ {
		put(i)
	}
	select {
	case <-srv.Done():
		release()
		t.Fatalf("the node stopped: %v", srv.Err())
	default:
	}
	if s := srv.Node().Status().Snapshot; s != before {
		release()
		t.Fatalf("snapshot at %d without a free descriptor", s)
	}
	release()

	// Once descriptors are free again, a later write brings the snapshot.
	deadline := time.Now().Add(15 * time.Second)
	for i := 2*snapshotCount + 1; srv.Node().Status().Snapshot == before; i++ {
		if time.Now().After(deadline) {
			t.Fatal("no snapshot after descriptors were freed")
		}
		put(i)
		time.Sleep(20 * time.Millisecond) // the retry waits out a backoff of a second
	}
}
