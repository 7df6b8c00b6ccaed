package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"

	"github.com/spf13/cobra"

	"github.com/raftkv/raftkv/client"
)

func newStatusCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the status of every member",
		Long: `Show one line per member of the cluster: the member list comes from the
cluster, then every member is asked for its own status at its advertised
client URL, all at once, within --timeout. STATE is the member's raft state,
"unreachable" when it did not answer, "unstarted" when it never ran; LEADER
and TERM are the member's view; LAG is how many entries it has applied fewer
than the leader. A member that is down does not fail the command.

Without a leader the member list cannot be read: the command then shows the
members that --endpoints reach, with a warning on standard error, and fails
(exit 5) only if none answers. With -o json each member is one line:
{"id", "name", "endpoint", "status" (the API's /v1/status answer), "lag"} or
{"id", "name", "endpoint", "error"}.`,
		Example: `  raftkv status
  raftkv status -o json | jq -r 'select(.error) | .id'`,
		Args: cobra.NoArgs,
	}
	f := addClientFlags(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		return f.request(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
			rows, leader, err := memberStatuses(ctx, c)
			if errors.Is(err, client.ErrUnavailable) {
				// Without a leader there is no member list, which is just when
				// an operator needs to see each node's own view.
				var fallback error
				rows, leader, fallback = endpointStatuses(ctx, c)
				if fallback != nil {
					return err
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "raftkv: warning: %v; showing the members --endpoints reach\n", err)
			} else if err != nil {
				return err
			}
			return printStatuses(p, rows, leader)
		})
	}
	return cmd
}

// statusRow is one member's line of the status table.
type statusRow struct {
	id       uint64
	name     string
	started  bool
	endpoint string // the client URL that answered, or the last one tried
	status   *client.Status
	err      error
}

// memberStatuses reads the member list and asks every member for its status,
// in parallel. It returns the rows by id and the leader's id.
func memberStatuses(ctx context.Context, c *client.Client) ([]statusRow, uint64, error) {
	list, err := c.MemberList(ctx)
	if err != nil {
		return nil, 0, err
	}
	slices.SortFunc(list.Members, func(a, b client.Member) int { return cmp.Compare(a.ID, b.ID) })
	rows := make([]statusRow, len(list.Members))
	var wg sync.WaitGroup
	for i, m := range list.Members {
		rows[i] = statusRow{id: m.ID, name: m.Name, started: m.Started}
		if len(m.ClientURLs) == 0 {
			continue
		}
		wg.Go(func() { rows[i].query(ctx, c, m.ClientURLs) })
	}
	wg.Wait()
	return rows, list.Leader, nil
}

// query asks the member at each of its client URLs in turn until one
// answers as this member.
func (r *statusRow) query(ctx context.Context, c *client.Client, urls []string) {
	for _, u := range urls {
		r.endpoint = u
		s, err := c.StatusOf(ctx, u)
		if err == nil && s.ID != r.id {
			err = fmt.Errorf("%s answered as member %d", u, s.ID)
		}
		r.err = err
		if err == nil {
			r.status = &s
			if r.name == "" {
				r.name = s.Name
			}
			return
		}
	}
}

// endpointStatuses asks each endpoint of c for its status, for when there is
// no member list. Endpoints that do not answer are left out; it fails if
// none answers. The leader is the one the answers name most recently (the
// highest term).
func endpointStatuses(ctx context.Context, c *client.Client) ([]statusRow, uint64, error) {
	endpoints := c.Endpoints()
	rows := make([]statusRow, len(endpoints))
	var wg sync.WaitGroup
	for i, e := range endpoints {
		wg.Go(func() {
			s, err := c.StatusOf(ctx, e)
			rows[i] = statusRow{endpoint: e, err: err, started: true}
			if err == nil {
				rows[i].id, rows[i].name, rows[i].status = s.ID, s.Name, &s
			}
		})
	}
	wg.Wait()
	rows = slices.DeleteFunc(rows, func(r statusRow) bool { return r.status == nil })
	if len(rows) == 0 {
		return nil, 0, errors.New("no endpoint answered")
	}
	slices.SortFunc(rows, func(a, b statusRow) int { return cmp.Compare(a.id, b.id) })
	rows = slices.CompactFunc(rows, func(a, b statusRow) bool { return a.id == b.id })
	var leader, term uint64
	for _, r := range rows {
		if r.status.Leader != 0 && r.status.Term >= term {
			leader, term = r.status.Leader, r.status.Term
		}
	}
	return rows, leader, nil
}

// statusJSON is one member in -o json output.
type statusJSON struct {
	ID       uint64         `json:"id"`
	Name     string         `json:"name,omitempty"`
	Endpoint string         `json:"endpoint,omitempty"`
	Status   *client.Status `json:"status,omitempty"`
	Lag      *uint64        `json:"lag,omitempty"`
	Error    string         `json:"error,omitempty"`
}

func printStatuses(p *printer, rows []statusRow, leader uint64) error {
	// The leader's applied index, if the leader answered.
	var leaderApplied *uint64
	for _, r := range rows {
		if r.id == leader && r.status != nil {
			leaderApplied = &r.status.AppliedIndex
		}
	}
	lag := func(r statusRow) *uint64 {
		if leaderApplied == nil || r.status == nil {
			return nil
		}
		l := *leaderApplied - min(*leaderApplied, r.status.AppliedIndex)
		return &l
	}
	if p.json {
		for _, r := range rows {
			j := statusJSON{ID: r.id, Name: r.name, Endpoint: r.endpoint, Status: r.status, Lag: lag(r)}
			switch {
			case r.err != nil:
				j.Error = r.err.Error()
			case r.status == nil && !r.started:
				j.Error = "the member has not started: it has no client URL yet"
			case r.status == nil:
				j.Error = "the member published no client URL"
			}
			if err := p.object(j); err != nil {
				return err
			}
		}
		return nil
	}
	tw := newTable(p)
	fmt.Fprintln(tw, "ID\tNAME\tSTATE\tLEADER\tTERM\tAPPLIED\tLAG\tDATA-SIZE")
	for _, r := range rows {
		s := r.status
		if s == nil {
			state := "unreachable"
			if r.err == nil && !r.started {
				state = "unstarted"
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\t-\t-\t-\t-\t-\n", r.id, orDash(r.name), state)
			continue
		}
		l := "-"
		if v := lag(r); v != nil {
			l = strconv.FormatUint(*v, 10)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%d\t%d\t%s\t%s\n", r.id, orDash(r.name), orDash(s.RaftState),
			s.Leader, s.Term, s.AppliedIndex, l, humanBytes(s.DataDirBytes))
	}
	return tw.Flush()
}

// humanBytes formats a size in binary units, like "66.9MiB": one word, so
// that the table splits on blanks.
func humanBytes(n int64) string {
	if n < 1024 {
		return strconv.FormatInt(n, 10) + "B"
	}
	v := float64(n)
	unit := ""
	for _, u := range []string{"KiB", "MiB", "GiB", "TiB", "PiB"} {
		v /= 1024
		unit = u
		if v < 1024 {
			break
		}
	}
	return fmt.Sprintf("%.1f%s", v, unit)
}
