package main

import (
	"github.com/spf13/cobra"

	"github.com/raftkv/raftkv/client"
)

// maxPageSize is the largest page the API serves.
const maxPageSize = 10000

func newListCommand() *cobra.Command {
	var limit, pageSize int
	var keysOnly bool
	var consistency string
	cmd := &cobra.Command{
		Use:   "list [PREFIX]",
		Short: "List the keys that start with a prefix, with their values",
		Long: `List every key that starts with PREFIX (every key when PREFIX is left out), in
byte order, fetching page after page. Text output is etcdctl's: a line with
the key, then a line with the value (just the key with --keys-only). With
-o json each key is one line of JSON, keys and values in base64, with the
revision its page was read at.

--limit N stops after N keys (0: no limit). Each page is consistent at its
own revision; --timeout bounds each page's request.`,
		Example: `  raftkv list config/
  raftkv list --keys-only
  raftkv list config/ --limit 10 -o json`,
		Args: cobra.MaximumNArgs(1),
	}
	f := addClientFlags(cmd)
	fl := cmd.Flags()
	fl.IntVar(&limit, "limit", 0, "list at most N keys (0: all)")
	fl.IntVar(&pageSize, "page-size", 1000, "keys per request, 1 to 10000")
	fl.BoolVar(&keysOnly, "keys-only", false, "print keys without values")
	fl.StringVar(&consistency, "consistency", "linearizable", "linearizable or serializable (local, possibly stale)")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		switch {
		case limit < 0:
			return usagef("--limit %d must not be negative", limit)
		case pageSize < 1 || pageSize > maxPageSize:
			return usagef("--page-size %d: want 1 to %d", pageSize, maxPageSize)
		}
		cons, err := parseConsistency(consistency)
		if err != nil {
			return err
		}
		c, p, err := f.client(cmd)
		if err != nil {
			return err
		}
		defer c.Close()
		var prefix []byte
		if len(args) == 1 {
			prefix = []byte(args[0])
		}
		opts := client.ListOptions{Limit: pageSize, KeysOnly: keysOnly, Consistency: cons}
		if limit > 0 {
			opts.Limit = min(pageSize, limit)
		}
		listed := 0
		for {
			ctx, cancel := f.requestContext(cmd)
			page, err := c.List(ctx, prefix, opts)
			cancel()
			if err != nil {
				return err
			}
			for _, kv := range page.KVs {
				if limit > 0 && listed == limit {
					return nil
				}
				listed++
				kv.Revision = page.Revision
				switch {
				case p.json:
					err = p.object(toKVJSON(kv, !keysOnly))
				case keysOnly:
					err = p.text(kv.Key)
				default:
					err = p.text(kv.Key, kv.Value)
				}
				if err != nil {
					return err
				}
			}
			if !page.More || (limit > 0 && listed == limit) {
				return nil
			}
			opts.Cursor = page.NextCursor
		}
	}
	return cmd
}
