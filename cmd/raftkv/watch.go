package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/raftkv/raftkv/client"
)

func newWatchCommand() *cobra.Command {
	var prefix bool
	var from uint64
	cmd := &cobra.Command{
		Use:   "watch [KEY]",
		Short: "Print the changes of a key, or of every key with a prefix, as they happen",
		Long: `Print each change of KEY as it happens, until interrupted (SIGINT or SIGTERM:
exit 0). Text output is etcdctl's, three lines per event: PUT or DELETE, the
key, the value (empty for a delete). With -o json each event is one line of
JSON, keys and values in base64.

--prefix watches every key that starts with KEY (every key when KEY is left
out). --from REV starts with the changes of revision REV instead of the next
one. A dropped connection, a node that stops or a watch that fell behind is
resumed on the next endpoint where it stopped, without gaps or duplicates.
If REV (or the resume point) is older than the history of one member, the
other endpoints are tried (each member keeps its own history: a restarted
one only what came after its last snapshot); if it is older than every
endpoint's, the command exits 1 naming the oldest revision available. --timeout bounds connecting.`,
		Example: `  raftkv watch config/color
  raftkv watch config/ --prefix --from 40 -o json`,
		Args: cobra.MaximumNArgs(1),
	}
	f := addClientFlags(cmd)
	cmd.Flags().BoolVar(&prefix, "prefix", false, "watch every key that starts with KEY")
	cmd.Flags().Uint64Var(&from, "from", 0, "start with the changes of this revision (0: the next one)")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if len(args) == 0 && !prefix {
			return usagef("watch needs a KEY, or --prefix to watch every key")
		}
		var key []byte
		if len(args) == 1 {
			key = []byte(args[0])
		}
		if len(key) == 0 && !prefix {
			return usagef("empty key")
		}
		c, p, err := f.client(cmd)
		if err != nil {
			return err
		}
		defer c.Close()
		ctx := cmd.Context()
		if ctx == nil {
			ctx = context.Background()
		}
		ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
		defer stop()

		// --timeout bounds the first connection only; the stream itself
		// lasts until a signal.
		watchCtx, cancel := context.WithCancel(ctx)
		defer cancel()
		timer := time.AfterFunc(f.timeout, cancel)
		w, err := c.Watch(watchCtx, key, client.WatchOptions{Prefix: prefix, From: from})
		if !timer.Stop() {
			if err == nil {
				w.Close()
			}
			if ctx.Err() != nil {
				return nil // interrupted while connecting
			}
			return fmt.Errorf("watch: no stream within --timeout %v: %w", f.timeout, context.DeadlineExceeded)
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return compactedHint(err)
		}
		defer w.Close()
		for {
			ev, err := w.Next()
			if err != nil {
				if ctx.Err() != nil {
					return nil // interrupted: the way a watch ends
				}
				if errors.Is(err, context.Canceled) {
					return err
				}
				// A resume that every endpoint refused as compacted cannot
				// continue at ResumeFrom: say what can.
				if errors.As(err, new(*client.CompactedError)) {
					return compactedHint(err)
				}
				return fmt.Errorf("%w (resume with --from %d)", err, w.ResumeFrom())
			}
			if err := printEvent(p, ev); err != nil {
				return err
			}
		}
	}
	return cmd
}

// compactedHint adds to a *CompactedError, which every endpoint answered,
// how to watch on; other errors are returned as they are.
func compactedHint(err error) error {
	var compacted *client.CompactedError
	if errors.As(err, &compacted) {
		return fmt.Errorf("%w: use --from %d or later, or list the keys and watch from the listing's revision + 1", err, compacted.OldestRevision)
	}
	return err
}

// eventJSON is an event in JSON output; a put always has a value, empty or
// not.
type eventJSON struct {
	Type           client.EventType `json:"type"`
	Key            []byte           `json:"key"`
	Value          *[]byte          `json:"value,omitempty"`
	CreateRevision uint64           `json:"create_revision,omitempty"`
	ModRevision    uint64           `json:"mod_revision,omitempty"`
	Version        uint64           `json:"version,omitempty"`
	Revision       uint64           `json:"revision"`
}

func printEvent(p *printer, ev client.Event) error {
	if p.json {
		e := eventJSON{Type: ev.Type, Key: ev.Key, CreateRevision: ev.CreateRevision,
			ModRevision: ev.ModRevision, Version: ev.Version, Revision: ev.Revision}
		if ev.Type == client.EventPut {
			e.Value = &ev.Value
		}
		return p.object(e)
	}
	return p.text([]byte(strings.ToUpper(string(ev.Type))), ev.Key, ev.Value)
}
