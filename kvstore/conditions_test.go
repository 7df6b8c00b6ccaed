package kvstore

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
)

func TestConditionalWrites(t *testing.T) {
	s := NewStore()
	put(t, s, 10, "k", "v1") // create_revision 10

	cases := []struct {
		name    string
		cmd     Command
		wantErr error
		exists  bool // the failure reports the key as present
	}{
		{"if-match wrong revision", Command{Op: OpPut, Cond: Condition{Kind: CondModRevision, ModRevision: 9}, Key: []byte("k"), Value: []byte("x")}, ErrPreconditionFailed, true},
		{"if-match missing key", Command{Op: OpPut, Cond: Condition{Kind: CondModRevision, ModRevision: 10}, Key: []byte("nope"), Value: []byte("x")}, ErrPreconditionFailed, false},
		{"create-only existing", Command{Op: OpPut, Cond: Condition{Kind: CondAbsent}, Key: []byte("k"), Value: []byte("x")}, ErrPreconditionFailed, true},
		{"exists on missing", Command{Op: OpPut, Cond: Condition{Kind: CondExists}, Key: []byte("nope"), Value: []byte("x")}, ErrPreconditionFailed, false},
		{"delete if-match wrong", Command{Op: OpDelete, Cond: Condition{Kind: CondModRevision, ModRevision: 11}, Key: []byte("k")}, ErrPreconditionFailed, true},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res := s.Apply(uint64(20+i), &c.cmd)
			if !errors.Is(res.Err, c.wantErr) {
				t.Fatalf("err = %v, want %v", res.Err, c.wantErr)
			}
			var pe *PreconditionError
			if !errors.As(res.Err, &pe) || pe.Exists != c.exists || (c.exists && pe.Current.ModRevision != 10) {
				t.Fatalf("precondition error = %+v, want exists=%v at revision 10", pe, c.exists)
			}
			if s.Revision() != 10 || len(res.Change.Events) != 0 {
				t.Fatalf("a failed condition changed the store: revision %d, %d events", s.Revision(), len(res.Change.Events))
			}
		})
	}

	res := s.Apply(30, &Command{Op: OpPut, Cond: Condition{Kind: CondModRevision, ModRevision: 10}, Key: []byte("k"), Value: []byte("v2")})
	if res.Err != nil || res.Created || res.Item.Version != 2 || res.Item.CreateRevision != 10 || res.Item.ModRevision != 30 {
		t.Fatalf("compare-and-swap = %+v", res)
	}
	res = s.Apply(31, &Command{Op: OpPut, Cond: Condition{Kind: CondAbsent}, Key: []byte("new"), Value: []byte("v")})
	if res.Err != nil || !res.Created {
		t.Fatalf("create-only = %+v", res)
	}
	res = s.Apply(32, &Command{Op: OpDelete, Cond: Condition{Kind: CondExists}, Key: []byte("new")})
	if res.Err != nil || res.Deleted != 1 || res.Item.ModRevision != 31 {
		t.Fatalf("conditional delete = %+v", res)
	}
}

func TestListAndDeleteRange(t *testing.T) {
	s := NewStore()
	keys := []string{"a", "app/1", "app/2", "app/10", "apple", "b", "app/\xff"}
	for i, k := range keys {
		put(t, s, uint64(i+1), k, "v-"+k)
	}
	list := func(prefix, after string, limit int) []string {
		var afterB []byte
		if after != "" {
			afterB = []byte(after)
		}
		kvs, more, rev := s.List([]byte(prefix), afterB, limit)
		if rev != s.Revision() {
			t.Fatalf("list revision %d, store %d", rev, s.Revision())
		}
		out := make([]string, 0, len(kvs)+1)
		for _, kv := range kvs {
			if string(kv.Value) != "v-"+string(kv.Key) {
				t.Fatalf("key %q has value %q", kv.Key, kv.Value)
			}
			out = append(out, string(kv.Key))
		}
		if more {
			out = append(out, "+more")
		}
		return out
	}
	for _, c := range []struct {
		prefix, after string
		limit         int
		want          string
	}{
		{"app/", "", 10, "[app/1 app/10 app/2 app/\xff]"},
		{"app/", "", 2, "[app/1 app/10 +more]"},
		{"app/", "app/10", 2, "[app/2 app/\xff]"},
		{"app", "", 10, "[app/1 app/10 app/2 app/\xff apple]"},
		{"", "", 100, "[a app/1 app/10 app/2 app/\xff apple b]"},
		{"", "apple", 100, "[b]"},
		{"app/", "a", 1, "[app/1 +more]"}, // a cursor before the prefix starts at the prefix
		{"zzz", "", 10, "[]"},
	} {
		if got := fmt.Sprint(list(c.prefix, c.after, c.limit)); got != c.want {
			t.Errorf("List(%q, after %q, %d) = %s, want %s", c.prefix, c.after, c.limit, got, c.want)
		}
	}

	res := s.Apply(20, &Command{Op: OpDeleteRange, Key: []byte("app/")})
	if res.Err != nil || res.Deleted != 4 || res.Revision != 20 || len(res.Change.Events) != 4 {
		t.Fatalf("delete range = %+v", res)
	}
	for _, ev := range res.Change.Events {
		if ev.Type != EventDelete || ev.Item.ModRevision != 20 {
			t.Fatalf("event %+v", ev)
		}
	}
	if got := fmt.Sprint(list("", "", 100)); got != "[a apple b]" {
		t.Fatalf("after delete range: %s", got)
	}
	res = s.Apply(21, &Command{Op: OpDeleteRange, Key: []byte("nothing/")})
	if res.Err != nil || res.Deleted != 0 || res.Revision != 20 || s.Revision() != 20 {
		t.Fatalf("empty delete range = %+v, store revision %d", res, s.Revision())
	}
}

func TestCaptureIsolatedFromLaterWrites(t *testing.T) {
	s := NewStore()
	put(t, s, 1, "a", "1")
	write := s.Capture()
	put(t, s, 2, "a", "2")
	put(t, s, 3, "b", "3")
	var first, again bytes.Buffer
	if err := write(&first); err != nil {
		t.Fatal(err)
	}
	// A snapshot file is written in passes: each must see the same bytes.
	put(t, s, 4, "c", "4")
	if err := write(&again); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(first.Bytes(), again.Bytes()) {
		t.Fatal("a capture wrote different bytes the second time")
	}
	data := first.Bytes()
	r := NewStore()
	if err := r.Restore(data); err != nil {
		t.Fatal(err)
	}
	if it, rev, _ := r.Get([]byte("a")); string(it.Value) != "1" || rev != 1 || r.Len() != 1 {
		t.Fatalf("captured state leaked later writes: a=%q revision %d, %d keys", it.Value, rev, r.Len())
	}
}
