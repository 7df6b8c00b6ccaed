package main

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/raftkv/raftkv/client"
)

func newMemberCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "member COMMAND",
		Short: "List, add, promote, update and remove members",
		Long: `List the members of the cluster and change them, one change at a time.
Each change is answered once it is applied; a change whose answer is lost is
never sent twice (exit 6: look with "raftkv member list").`,
	}
	commandGroup(cmd, "list, add, promote, update or remove")
	cmd.AddCommand(newMemberListCommand(), newMemberAddCommand(), newMemberPromoteCommand(),
		newMemberUpdateCommand(), newMemberRemoveCommand())
	return cmd
}

func newMemberListCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the members",
		Long: `List the members, as the leader sees them: a table with one line per member,
by id. STARTED is true once the member has run and published its name and
client URLs; MATCH is the last log index the leader knows the member has
("-" without a leader). With -o json, the API's answer as one line.`,
		Example: `  raftkv member list
  raftkv member list -o json | jq '.members[] | select(.is_learner)'`,
		Args: cobra.NoArgs,
	}
	f := addClientFlags(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		return f.request(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
			res, err := c.MemberList(ctx)
			if err != nil {
				return err
			}
			if p.json {
				return p.object(res)
			}
			slices.SortFunc(res.Members, func(a, b client.Member) int { return cmp.Compare(a.ID, b.ID) })
			tw := newTable(p)
			fmt.Fprintln(tw, "ID\tNAME\tSTARTED\tLEARNER\tLEADER\tPEER-URLS\tCLIENT-URLS\tMATCH")
			for _, m := range res.Members {
				match := "-"
				if m.Progress != nil {
					match = strconv.FormatUint(m.Progress.Match, 10)
				}
				fmt.Fprintf(tw, "%d\t%s\t%t\t%t\t%t\t%s\t%s\t%s\n", m.ID, orDash(m.Name), m.Started, m.IsLearner,
					m.IsLeader || m.ID == res.Leader, orDash(strings.Join(m.PeerURLs, ",")),
					orDash(strings.Join(m.ClientURLs, ",")), match)
			}
			return tw.Flush()
		})
	}
	return cmd
}

func newMemberAddCommand() *cobra.Command {
	var id string
	var learner bool
	cmd := &cobra.Command{
		Use:   "add PEER_URL...",
		Short: "Add a member and print its id",
		Long: `Add a member with the peer URLs given and print its id once the change is
applied; then start the new node with "raftkv serve --join". Without --id the
cluster chooses the id. --learner adds a non-voting learner, which receives
the log without counting towards quorum: promote it once it has caught up.

The cluster refuses (exit 4) an id or peer URL in use, an id that belonged to
a removed member, a voter that would leave fewer started voters than a
quorum, and any change while another one is pending.`,
		Example: `  raftkv member add http://127.0.0.1:42379 --id 4 --learner
  raftkv serve --id 4 --cluster http://127.0.0.1:12379,http://127.0.0.1:22379,http://127.0.0.1:32379,http://127.0.0.1:42379 --port 42380 --join
  raftkv member promote 4`,
		Args: cobra.MinimumNArgs(1),
	}
	f := addClientFlags(cmd)
	cmd.Flags().StringVar(&id, "id", "", "the new member's id (default: chosen by the cluster)")
	cmd.Flags().BoolVar(&learner, "learner", false, "add a non-voting learner")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		req := client.MemberAddRequest{PeerURLs: args, Learner: learner}
		if cmd.Flags().Changed("id") {
			var err error
			if req.ID, err = parseMemberID("--id", id); err != nil {
				return err
			}
		}
		return runMemberChange(cmd, f, func(ctx context.Context, c *client.Client) (any, uint64, error) {
			m, err := c.MemberAdd(ctx, req)
			return m, m.ID, err
		})
	}
	return cmd
}

func newMemberPromoteCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "promote ID",
		Short: "Turn a learner into a voter",
		Long: `Turn learner ID into a voting member. A learner that has not caught up with the
leader yet is refused (exit 4, learner_not_ready, saying how far behind it
is): nothing changed, try again later.`,
		Example: `  raftkv member promote 4`,
		Args:    cobra.ExactArgs(1),
	}
	f := addClientFlags(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		id, err := parseMemberID("ID", args[0])
		if err != nil {
			return err
		}
		return runMemberChange(cmd, f, func(ctx context.Context, c *client.Client) (any, uint64, error) {
			m, err := c.MemberPromote(ctx, id)
			return m, id, err
		})
	}
	return cmd
}

func newMemberUpdateCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "update ID PEER_URL...",
		Short: "Replace a member's peer URLs",
		Long: `Replace the peer URLs of member ID with the ones given, for a node that moved to
another address. The other members reach it at the new URLs from then on.`,
		Example: `  raftkv member update 2 http://10.0.0.7:22379`,
		Args:    cobra.MinimumNArgs(2),
	}
	f := addClientFlags(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		id, err := parseMemberID("ID", args[0])
		if err != nil {
			return err
		}
		return runMemberChange(cmd, f, func(ctx context.Context, c *client.Client) (any, uint64, error) {
			m, err := c.MemberUpdate(ctx, id, args[1:])
			return m, id, err
		})
	}
	return cmd
}

func newMemberRemoveCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "remove ID",
		Short: "Remove a member",
		Long: `Remove member ID; the removed node stops by itself. Removing the leader first
moves leadership to the most caught-up voter. An id is never reused: to bring
the node back, wipe its data dir and add it under a new id.`,
		Example: `  raftkv member remove 3`,
		Args:    cobra.ExactArgs(1),
	}
	f := addClientFlags(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		id, err := parseMemberID("ID", args[0])
		if err != nil {
			return err
		}
		return runMemberChange(cmd, f, func(ctx context.Context, c *client.Client) (any, uint64, error) {
			res := struct {
				Removed uint64 `json:"removed"`
			}{id}
			return res, id, c.MemberRemove(ctx, id)
		})
	}
	return cmd
}

// runMemberChange runs one membership change within --timeout and prints
// the member id it names (with -o json: the API's answer).
func runMemberChange(cmd *cobra.Command, f *clientFlags, change func(context.Context, *client.Client) (any, uint64, error)) error {
	return f.request(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
		res, id, err := change(ctx, c)
		if err != nil {
			return err
		}
		if p.json {
			return p.object(res)
		}
		return p.text([]byte(strconv.FormatUint(id, 10)))
	})
}

// parseMemberID reads a member id: a positive integer, decimal or 0x hex,
// as the API accepts.
func parseMemberID(what, s string) (uint64, error) {
	base, digits := 10, s
	if rest, ok := strings.CutPrefix(strings.ToLower(s), "0x"); ok {
		base, digits = 16, rest
	}
	id, err := strconv.ParseUint(digits, base, 64)
	if err != nil || id == 0 {
		return 0, usagef("%s %q: want a positive integer member id", what, s)
	}
	return id, nil
}

// newTable returns a tabwriter on p's output, etcdctl-like: columns
// separated by two spaces.
func newTable(p *printer) *tabwriter.Writer {
	return tabwriter.NewWriter(p.w, 0, 8, 2, ' ', 0)
}

// orDash keeps table columns aligned (and splittable) when a field is empty.
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
