package main

import (
	"context"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/raftkv/raftkv/client"
)

func newDelCommand() *cobra.Command {
	var prefix bool
	var ifMatch string
	cmd := &cobra.Command{
		Use:   "del KEY",
		Short: "Delete a key, or every key with a prefix",
		Long: `Delete KEY and print how many keys were deleted. A missing KEY exits 3.

--prefix deletes every key that starts with KEY, in one atomic change, and
succeeds when none matched (printing 0); an empty KEY ("") deletes every key.
--if-match REV deletes only if the key's mod revision is REV (*: if it
exists); otherwise nothing changes and the command exits 4.`,
		Example: `  raftkv del lock --if-match 44
  raftkv del config/ --prefix`,
		Args: cobra.ExactArgs(1),
	}
	f := addClientFlags(cmd)
	cmd.Flags().BoolVar(&prefix, "prefix", false, "delete every key that starts with KEY")
	cmd.Flags().StringVar(&ifMatch, "if-match", "", "delete only if the key's mod revision is REV (*: if it exists)")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		var cond client.Condition
		if cmd.Flags().Changed("if-match") {
			if prefix {
				return usagef("--if-match and --prefix exclude each other")
			}
			var err error
			if cond, err = parseIfMatch(ifMatch); err != nil {
				return err
			}
		}
		if !prefix && args[0] == "" {
			return usagef("empty key")
		}
		return f.request(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
			var res client.DeleteResult
			var err error
			if prefix {
				res, err = c.DeleteRange(ctx, []byte(args[0]))
			} else {
				res, err = c.Delete(ctx, []byte(args[0]), cond)
			}
			if err != nil {
				return err
			}
			if p.json {
				return p.object(res)
			}
			return p.text([]byte(strconv.FormatInt(res.Deleted, 10)))
		})
	}
	return cmd
}
