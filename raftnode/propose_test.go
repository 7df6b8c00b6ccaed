package raftnode

import (
	"strconv"
	"testing"
)

func TestGatherTakesWhatIsQueued(t *testing.T) {
	c := make(chan Proposal, 10)
	for i := range 5 {
		c <- Proposal{Data: []byte(strconv.Itoa(i))}
	}
	got := gather(Proposal{Data: []byte("first")}, c, 4)
	if len(got) != 4 || string(got[0].Data) != "first" || string(got[3].Data) != "2" {
		t.Fatalf("gather with 5 queued, max 4: %d proposals, %q first", len(got), got[0].Data)
	}
	if got := gather(Proposal{}, c, 4); len(got) != 3 {
		t.Fatalf("gather with 2 queued: %d proposals, want 3", len(got))
	}
	if got := gather(Proposal{}, c, 4); len(got) != 1 {
		t.Fatalf("gather with none queued: %d proposals, want 1 (no waiting)", len(got))
	}
}
