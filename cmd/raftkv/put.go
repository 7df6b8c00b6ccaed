package main

import (
	"fmt"
	"io"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/raftkv/raftkv/client"
)

func newPutCommand() *cobra.Command {
	var ifMatch string
	var createOnly bool
	var lease uint64
	cmd := &cobra.Command{
		Use:   "put KEY [VALUE]",
		Short: "Write a key and print the write's revision",
		Long: `Write VALUE under KEY and print the write's revision. Without VALUE the value
is read from standard input, byte for byte.

--if-match REV writes only if the key's mod revision is REV (0: only if the
key does not exist; *: only if it exists); --create-only writes only if the
key does not exist. A condition that does not hold changes nothing and exits
4, printing the key's current mod revision.

--lease ID attaches the key to a lease (raftkv lease grant): the key is
deleted when the lease expires or is revoked. A lease that does not exist
exits 3. A put without --lease detaches the key from its lease.`,
		Example: `  raftkv put config/color blue
  raftkv put config/color red --if-match 42
  raftkv put lock owner-1 --create-only
  raftkv put services/web-1 10.0.0.7:8080 --lease "$(raftkv lease grant 10s)"
  raftkv put blob < file.bin`,
		Args: cobra.RangeArgs(1, 2),
	}
	f := addClientFlags(cmd)
	cmd.Flags().StringVar(&ifMatch, "if-match", "", "write only if the key's mod revision is REV (0: absent, *: present)")
	cmd.Flags().BoolVar(&createOnly, "create-only", false, "write only if the key does not exist")
	cmd.Flags().Uint64Var(&lease, "lease", 0, "attach the key to this lease")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if args[0] == "" {
			return usagef("empty key")
		}
		var cond client.Condition
		switch {
		case createOnly && cmd.Flags().Changed("if-match"):
			return usagef("--if-match and --create-only exclude each other")
		case createOnly:
			cond = client.IfNotExists()
		case cmd.Flags().Changed("if-match"):
			var err error
			if cond, err = parseIfMatch(ifMatch); err != nil {
				return err
			}
		}
		c, p, err := f.client(cmd)
		if err != nil {
			return err
		}
		defer c.Close()
		var value []byte
		if len(args) == 2 {
			value = []byte(args[1])
		} else if value, err = io.ReadAll(cmd.InOrStdin()); err != nil {
			return fmt.Errorf("read the value from standard input: %w", err)
		}
		ctx, cancel := f.requestContext(cmd)
		defer cancel()
		var opts []client.PutOption
		if lease != 0 {
			opts = append(opts, client.WithLease(lease))
		}
		res, err := c.Put(ctx, []byte(args[0]), value, cond, opts...)
		if err != nil {
			return err
		}
		if p.json {
			return p.object(struct {
				Key []byte `json:"key"`
				client.Result
			}{[]byte(args[0]), res})
		}
		return p.text([]byte(strconv.FormatUint(res.Revision, 10)))
	}
	return cmd
}

// parseIfMatch reads --if-match: a revision, or * for "the key exists".
func parseIfMatch(s string) (client.Condition, error) {
	if s == "*" {
		return client.IfExists(), nil
	}
	rev, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return client.Condition{}, usagef("--if-match %q: want a revision or *", s)
	}
	return client.IfModRevision(rev), nil
}
