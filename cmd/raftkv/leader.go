package main

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/raftkv/raftkv/client"
)

func newLeaderCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "leader COMMAND",
		Short: "Move the cluster's leadership",
	}
	commandGroup(cmd, "transfer")
	cmd.AddCommand(newLeaderTransferCommand())
	return cmd
}

func newLeaderTransferCommand() *cobra.Command {
	var to string
	cmd := &cobra.Command{
		Use:   "transfer",
		Short: "Transfer leadership and print the new leader's id",
		Long: `Transfer leadership to member --to (default: the most caught-up voter) and
print the new leader's id once it leads (with -o json: the leader and its
term). Before maintenance on the leader's machine, so that writes keep
flowing. A learner cannot lead (exit 4); an unknown id exits 3. A transfer
that did not complete within an election timeout exits 6: leadership may or
may not have moved, see "raftkv status".`,
		Example: `  raftkv leader transfer --to 2
  raftkv leader transfer`,
		Args: cobra.NoArgs,
	}
	f := addClientFlags(cmd)
	cmd.Flags().StringVar(&to, "to", "", "id of the member to lead (default: the most caught-up voter)")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		var id uint64
		if cmd.Flags().Changed("to") {
			var err error
			if id, err = parseMemberID("--to", to); err != nil {
				return err
			}
		}
		return runMemberChange(cmd, f, func(ctx context.Context, c *client.Client) (any, uint64, error) {
			res, err := c.LeaderTransfer(ctx, id)
			return res, res.Leader, err
		})
	}
	return cmd
}
