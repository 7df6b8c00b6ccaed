package httpapi

import (
	"errors"
	"testing"

	"github.com/raftkv/raftkv/kvstore"
)

// TestWatchEndEvents checks the final event of a stream for each way a
// watcher ends against docs/API.md: resume_from is there when the stream can
// be resumed and absent (not 0) when it cannot, and the resync message says
// to resume, as resume_from does, rather than to list again.
func TestWatchEndEvents(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"lagged", &kvstore.WatchError{Reason: kvstore.ErrWatcherLagged, ResumeFrom: 1203},
			"event: error\ndata: {\"error\":\"watcher fell behind\",\"code\":\"lagged\",\"resume_from\":1203}\n\n"},
		{"resync", &kvstore.WatchError{Reason: kvstore.ErrWatchResync, ResumeFrom: 7},
			"event: error\ndata: {\"error\":\"the node replaced its state with the leader's snapshot; resume from resume_from on another member\",\"code\":\"resync\",\"resume_from\":7}\n\n"},
		{"stopping", &kvstore.WatchError{Reason: kvstore.ErrStopped, ResumeFrom: 9},
			"event: error\ndata: {\"error\":\"the node is shutting down\",\"code\":\"stopping\",\"resume_from\":9}\n\n"},
		{"cannot resume", errors.New("boom"),
			"event: error\ndata: {\"error\":\"boom\",\"code\":\"internal\"}\n\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := string(appendErrorEvent(nil, endEvent(tc.err))); got != tc.want {
				t.Fatalf("final event\n%q\nwant\n%q", got, tc.want)
			}
		})
	}
}
