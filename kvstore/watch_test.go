package kvstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

func change(rev uint64, keys ...string) Change {
	c := Change{Revision: rev}
	for _, k := range keys {
		c.Events = append(c.Events, &Event{Type: EventPut, Key: []byte(k), Item: Item{ModRevision: rev}})
	}
	return c
}

// next reads a change that must already be there.
func next(t *testing.T, w *Watcher) (Change, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return w.Next(ctx)
}

func describe(c Change) string {
	s := fmt.Sprint(c.Revision, ":")
	for _, e := range c.Events {
		s += " " + string(e.Key)
	}
	return s
}

func TestWatchDeliversMatchingChangesInOrder(t *testing.T) {
	h := newHub(100, DefaultWatchHistoryBytes, 16)
	h.publish([]Change{change(1, "a"), change(2, "b")})
	w, err := h.watch([]byte("app/"), true, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	h.publish([]Change{change(3, "app/1"), change(4, "other"), change(5, "app/2", "b", "app/3")})
	for _, want := range []string{"3: app/1", "5: app/2 app/3"} {
		c, err := next(t, w)
		if err != nil || describe(c) != want {
			t.Fatalf("got %q, %v; want %q", describe(c), err, want)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := w.Next(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Next with nothing pending = %v, want the context's error", err)
	}
}

func TestWatchResumesFromHistory(t *testing.T) {
	h := newHub(100, DefaultWatchHistoryBytes, 16)
	h.publish([]Change{change(1, "k"), change(2, "x"), change(3, "k")})
	w, err := h.watch([]byte("k"), false, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	h.publish([]Change{change(4, "k")})
	for _, want := range []string{"3: k", "4: k"} {
		if c, err := next(t, w); err != nil || describe(c) != want {
			t.Fatalf("got %q, %v; want %q", describe(c), err, want)
		}
	}
	// A watch from the future waits for its revision.
	f, err := h.watch([]byte("k"), false, 6)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h.publish([]Change{change(5, "k"), change(6, "k")})
	if c, err := next(t, f); err != nil || describe(c) != "6: k" {
		t.Fatalf("future watch got %q, %v", describe(c), err)
	}
}

func TestWatchCompactedHistory(t *testing.T) {
	h := newHub(3, DefaultWatchHistoryBytes, 16) // three events of history
	for rev := uint64(1); rev <= 5; rev++ {
		h.publish([]Change{change(rev, "k")})
	}
	_, err := h.watch([]byte("k"), false, 2)
	var ce *CompactedError
	if !errors.As(err, &ce) || ce.Oldest != 3 {
		t.Fatalf("watch from 2 = %v, want compacted with oldest 3", err)
	}
	w, err := h.watch([]byte("k"), false, 3)
	if err != nil {
		t.Fatalf("watch from the oldest kept revision: %v", err)
	}
	w.Close()
}

func TestSlowWatcherIsClosedNotWaitedFor(t *testing.T) {
	h := newHub(100, DefaultWatchHistoryBytes, 2)
	slow, err := h.watch([]byte("k"), false, 0)
	if err != nil {
		t.Fatal(err)
	}
	fast, err := h.watch([]byte("k"), false, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer fast.Close()
	for rev := uint64(1); rev <= 4; rev++ {
		h.publish([]Change{change(rev, "k")}) // never blocks
		if c, err := next(t, fast); err != nil || c.Revision != rev {
			t.Fatalf("fast watcher got %q, %v", describe(c), err)
		}
	}
	// The slow one still gets what was buffered, then why it ended.
	for _, want := range []uint64{1, 2} {
		if c, err := next(t, slow); err != nil || c.Revision != want {
			t.Fatalf("slow watcher got %q, %v; want revision %d", describe(c), err, want)
		}
	}
	_, err = next(t, slow)
	var we *WatchError
	if !errors.As(err, &we) || !errors.Is(err, ErrWatcherLagged) || we.ResumeFrom != 3 {
		t.Fatalf("slow watcher ended with %v, want lagged resuming from 3", err)
	}
	if h.count() != 1 {
		t.Fatalf("%d watchers registered, want 1", h.count())
	}
}

func TestResetEndsWatchers(t *testing.T) {
	h := newHub(100, DefaultWatchHistoryBytes, 16)
	h.publish([]Change{change(1, "k")})
	w, err := h.watch([]byte("k"), false, 0)
	if err != nil {
		t.Fatal(err)
	}
	h.reset(50)
	if _, err := next(t, w); !errors.Is(err, ErrWatchResync) {
		t.Fatalf("after reset: %v, want ErrWatchResync", err)
	}
	if _, err := h.watch([]byte("k"), false, 50); !errors.Is(err, ErrCompacted) {
		t.Fatalf("watch from the reset revision: %v, want compacted", err)
	}
	h.stop()
	if _, err := h.watch([]byte("k"), false, 0); !errors.Is(err, ErrStopped) {
		t.Fatalf("watch after stop: %v", err)
	}
}

// TestWatchHistoryBoundedInBytes: large values evict history by size long
// before the event bound, and a watch from an evicted revision gets the
// same compacted error as one evicted by count.
func TestWatchHistoryBoundedInBytes(t *testing.T) {
	const valueBytes = 1 << 20
	h := newHub(DefaultWatchHistory, 3*(valueBytes+eventOverhead+1), 16) // three 1 MiB events
	value := bytes.Repeat([]byte{'v'}, valueBytes)
	for rev := uint64(1); rev <= 10; rev++ {
		h.publish([]Change{{Revision: rev, Events: []*Event{{Type: EventPut, Key: []byte("k"), Item: Item{Value: value, ModRevision: rev}}}}})
		if h.bytes > h.maxBytes {
			t.Fatalf("history holds %d bytes, bound %d", h.bytes, h.maxBytes)
		}
	}
	_, err := h.watch([]byte("k"), false, 7)
	var ce *CompactedError
	if !errors.As(err, &ce) || ce.Oldest != 8 {
		t.Fatalf("watch from 7 = %v, want compacted with oldest 8", err)
	}
	w, err := h.watch([]byte("k"), false, 8)
	if err != nil {
		t.Fatalf("watch from the oldest kept revision: %v", err)
	}
	w.Close()
}
