package main

import (
	"context"

	"github.com/raftkv/raftkv/client"
	"github.com/spf13/cobra"
)

func newGetCommand() *cobra.Command {
	var consistency string
	cmd := &cobra.Command{
		Use:   "get KEY",
		Short: "Read a key and print its value",
		Long: `Read KEY and print its value followed by a newline (with -o json: the key, its
value and revisions). A missing key exits 3.`,
		Example: `  raftkv get config/color
  raftkv get config/color --consistency serializable -o json`,
		Args: cobra.ExactArgs(1),
	}
	f := addClientFlags(cmd)
	cmd.Flags().StringVar(&consistency, "consistency", "linearizable", "linearizable or serializable (local, possibly stale)")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if args[0] == "" {
			return usagef("empty key")
		}
		cons, err := parseConsistency(consistency)
		if err != nil {
			return err
		}
		return f.request(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
			kv, err := c.Get(ctx, []byte(args[0]), cons)
			if err != nil {
				return err
			}
			if p.json {
				return p.object(toKVJSON(kv, true))
			}
			return p.text(kv.Value)
		})
	}
	return cmd
}
