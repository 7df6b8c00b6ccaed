package kvstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// EventType is the kind of change an event reports.
type EventType uint8

// The kinds of events.
const (
	EventPut    EventType = 1
	EventDelete EventType = 2
)

func (t EventType) String() string {
	if t == EventDelete {
		return "delete"
	}
	return "put"
}

// Event is one change to one key. For a put, Item is the key's new state; for
// a delete, only Item.ModRevision (the deletion's revision) is set. Events are
// shared between watchers and must not be modified.
type Event struct {
	Type EventType
	Key  []byte
	Item Item
}

// Change is everything one revision did (or, from a Watcher, everything it
// did that the watcher asked for), in key order.
type Change struct {
	Revision uint64
	Events   []*Event
}

// Watch errors. A watcher ends with a *WatchError wrapping one of these, or
// with ErrStopped.
var (
	// ErrCompacted means the requested revision is older than the history
	// the node keeps; the error is a *CompactedError.
	ErrCompacted = errors.New("revision compacted")
	// ErrWatcherLagged means the watcher fell too far behind and was closed.
	ErrWatcherLagged = errors.New("watcher fell behind")
	// ErrWatchResync means the node replaced its state with a snapshot, so
	// its history no longer joins up with what the watcher saw. Nothing is
	// lost for the watcher: the revisions after ResumeFrom are still in the
	// history of members that did not install a snapshot.
	ErrWatchResync = errors.New("state replaced by a snapshot; resume on another member")
)

// CompactedError reports the oldest revision a watch can start from.
type CompactedError struct {
	Requested, Oldest uint64
}

func (e *CompactedError) Error() string {
	return fmt.Sprintf("revision %d is compacted; the oldest available is %d", e.Requested, e.Oldest)
}

// Unwrap makes errors.Is(err, ErrCompacted) hold.
func (e *CompactedError) Unwrap() error { return ErrCompacted }

// WatchError ends a watcher: Reason says why, ResumeFrom is the first
// revision it did not deliver.
type WatchError struct {
	Reason     error
	ResumeFrom uint64
}

func (e *WatchError) Error() string {
	return fmt.Sprintf("%v (resume from revision %d)", e.Reason, e.ResumeFrom)
}

func (e *WatchError) Unwrap() error { return e.Reason }

// Watcher delivers the changes to a key or a prefix, in revision order,
// without gaps or duplicates. It is used by one goroutine.
type Watcher struct {
	key    []byte
	prefix bool
	from   uint64 // the first revision it wants

	backlog []Change    // history it must deliver before c
	c       chan Change // live changes; closed when the watcher ends
	hub     *hub
	err     error // why c was closed; written before the close
}

// Next returns the next change. It returns ctx's error when ctx ends first
// (the watcher stays usable), and the watcher's end reason once it has
// ended and everything before the end was delivered.
func (w *Watcher) Next(ctx context.Context) (Change, error) {
	if len(w.backlog) > 0 {
		c := w.backlog[0]
		w.backlog = w.backlog[1:]
		return c, nil
	}
	select {
	case c, ok := <-w.c:
		if !ok {
			return Change{}, w.err
		}
		return c, nil
	case <-ctx.Done():
		return Change{}, ctx.Err()
	}
}

// Close stops the watcher and releases it. It is idempotent.
func (w *Watcher) Close() { w.hub.remove(w) }

// filter returns what of ch the watcher wants, sharing ch when it wants all.
func (w *Watcher) filter(ch Change) (Change, bool) {
	if ch.Revision < w.from {
		return Change{}, false
	}
	n := 0
	for _, ev := range ch.Events {
		if w.matches(ev.Key) {
			n++
		}
	}
	switch n {
	case 0:
		return Change{}, false
	case len(ch.Events):
		return ch, true
	}
	out := Change{Revision: ch.Revision, Events: make([]*Event, 0, n)}
	for _, ev := range ch.Events {
		if w.matches(ev.Key) {
			out.Events = append(out.Events, ev)
		}
	}
	return out, true
}

func (w *Watcher) matches(key []byte) bool {
	if w.prefix {
		return bytes.HasPrefix(key, w.key)
	}
	return bytes.Equal(key, w.key)
}

// hub keeps a bounded history of recent changes and fans new ones out to
// watchers. The applier publishes; it never blocks on a watcher: one whose
// buffer is full is closed instead.
type hub struct {
	mu        sync.Mutex
	history   []Change // oldest first
	events    int      // events in history
	maxEvents int
	bytes     int64 // size of history, by eventBytes
	maxBytes  int64
	compacted uint64 // revisions up to this one are not (all) in history
	last      uint64 // the newest published revision
	bufSize   int
	stopped   bool
	lagged    prometheus.Counter // counts watchers closed as lagged; may be nil

	// Watchers of one key are found by the key, so a change costs a lookup
	// per event rather than a look at every watcher; prefix watchers are
	// few and checked one by one.
	keyWatchers    map[string]map[*Watcher]struct{}
	prefixWatchers map[*Watcher]struct{}
	n              int
}

func newHub(maxEvents int, maxBytes int64, bufSize int) *hub {
	return &hub{
		maxEvents:      maxEvents,
		maxBytes:       maxBytes,
		bufSize:        bufSize,
		keyWatchers:    make(map[string]map[*Watcher]struct{}),
		prefixWatchers: make(map[*Watcher]struct{}),
	}
}

func (h *hub) add(w *Watcher) {
	h.n++
	if w.prefix {
		h.prefixWatchers[w] = struct{}{}
		return
	}
	set := h.keyWatchers[string(w.key)]
	if set == nil {
		set = make(map[*Watcher]struct{}, 1)
		h.keyWatchers[string(w.key)] = set
	}
	set[w] = struct{}{}
}

func (h *hub) registered(w *Watcher) bool {
	if w.prefix {
		_, ok := h.prefixWatchers[w]
		return ok
	}
	_, ok := h.keyWatchers[string(w.key)][w]
	return ok
}

// each calls fn for every watcher; fn may end the watcher.
func (h *hub) each(fn func(*Watcher)) {
	for w := range h.prefixWatchers {
		fn(w)
	}
	for _, set := range h.keyWatchers {
		for w := range set {
			fn(w)
		}
	}
}

// interested returns the watchers that may want ch, each once.
func (h *hub) interested(ch Change) []*Watcher {
	var ws []*Watcher
	for w := range h.prefixWatchers {
		ws = append(ws, w)
	}
	for i, ev := range ch.Events {
		for w := range h.keyWatchers[string(ev.Key)] {
			// A key appears once per change, except in hand-made changes;
			// skip a watcher already listed for an earlier event.
			if i > 0 && slices.Contains(ws, w) {
				continue
			}
			ws = append(ws, w)
		}
	}
	return ws
}

// watch registers a watcher for changes from revision from on (0: the next
// revision).
func (h *hub) watch(key []byte, prefix bool, from uint64) (*Watcher, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.stopped {
		return nil, ErrStopped
	}
	if from == 0 {
		from = h.last + 1
	}
	if from <= h.compacted {
		return nil, &CompactedError{Requested: from, Oldest: h.compacted + 1}
	}
	w := &Watcher{key: bytes.Clone(key), prefix: prefix, from: from, c: make(chan Change, h.bufSize), hub: h}
	for _, ch := range h.history {
		if fc, ok := w.filter(ch); ok {
			w.backlog = append(w.backlog, fc)
		}
	}
	h.add(w)
	return w, nil
}

// publish records changes, in revision order, and delivers them.
func (h *hub) publish(changes []Change) {
	if len(changes) == 0 {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, ch := range changes {
		h.history = append(h.history, ch)
		h.events += len(ch.Events)
		h.bytes += changeBytes(ch)
		h.last = ch.Revision
		for _, w := range h.interested(ch) {
			fc, ok := w.filter(ch)
			if !ok {
				continue
			}
			select {
			case w.c <- fc:
			default:
				h.end(w, &WatchError{Reason: ErrWatcherLagged, ResumeFrom: ch.Revision})
				if h.lagged != nil {
					h.lagged.Inc()
				}
			}
		}
	}
	// Keep at least the newest change, however large.
	for len(h.history) > 1 && (h.events > h.maxEvents || h.bytes > h.maxBytes) {
		h.events -= len(h.history[0].Events)
		h.bytes -= changeBytes(h.history[0])
		h.compacted = h.history[0].Revision
		h.history[0] = Change{}
		h.history = h.history[1:]
	}
}

// eventOverhead approximates what an event costs beside its key and value:
// the Event, its pointer in the Change and the slice headers.
const eventOverhead = 128

// changeBytes is the memory a change holds in the history, approximately.
func changeBytes(ch Change) int64 {
	n := int64(0)
	for _, ev := range ch.Events {
		n += int64(len(ev.Key)+len(ev.Item.Value)) + eventOverhead
	}
	return n
}

// reset forgets the history after the state was replaced at revision, and
// ends every watcher: what they saw does not join up with the new state.
func (h *hub) reset(revision uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.each(func(w *Watcher) {
		h.end(w, &WatchError{Reason: ErrWatchResync, ResumeFrom: max(h.last+1, w.from)})
	})
	h.history, h.events, h.bytes = nil, 0, 0
	h.compacted, h.last = revision, revision
}

// stop ends every watcher and refuses new ones.
func (h *hub) stop() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.stopped = true
	h.each(func(w *Watcher) {
		h.end(w, &WatchError{Reason: ErrStopped, ResumeFrom: max(h.last+1, w.from)})
	})
}

func (h *hub) remove(w *Watcher) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.registered(w) {
		h.end(w, &WatchError{Reason: context.Canceled, ResumeFrom: max(h.last+1, w.from)})
	}
}

// end closes a registered watcher; h.mu is held.
func (h *hub) end(w *Watcher, err error) {
	h.n--
	if w.prefix {
		delete(h.prefixWatchers, w)
	} else if set := h.keyWatchers[string(w.key)]; set != nil {
		delete(set, w)
		if len(set) == 0 {
			delete(h.keyWatchers, string(w.key))
		}
	}
	w.err = err
	close(w.c)
}

// count returns the number of watchers.
func (h *hub) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.n
}
