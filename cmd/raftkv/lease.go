package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/raftkv/raftkv/client"
)

func newLeaseCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "lease",
		Short: "Grant, renew, show and revoke leases: keys that vanish when their owner stops renewing",
		Long: `A lease is a time to live that keys can be attached to (raftkv put KEY VALUE
--lease ID). When nobody renews it for its TTL, or it is revoked, every key
attached to it is deleted, at one revision on every member, and watchers see
the deletes. See docs/LEASES.md for the timing guarantees.`,
	}
	cmd.AddCommand(newLeaseGrantCommand(), newLeaseKeepAliveCommand(), newLeaseRevokeCommand(), newLeaseShowCommand(), newLeaseListCommand())
	commandGroup(cmd, "grant, keepalive, revoke, show or list")
	return cmd
}

func parseLeaseArg(s string) (uint64, error) {
	id, err := strconv.ParseUint(s, 10, 64)
	if err != nil || id == 0 {
		return 0, usagef("lease id %q must be a positive integer", s)
	}
	return id, nil
}

func newLeaseGrantCommand() *cobra.Command {
	var id uint64
	cmd := &cobra.Command{
		Use:   "grant TTL",
		Short: "Grant a lease and print its id",
		Long: `Grant a lease of TTL (a duration such as 10s, or a number of seconds) and
print its id. The server raises a TTL shorter than one and a half election
timeouts to that. --id chooses the id (an id in use exits 4).`,
		Example: `  ID=$(raftkv lease grant 10s)
  raftkv put services/web-1 10.0.0.7:8080 --lease "$ID"
  raftkv lease keepalive "$ID"`,
		Args: cobra.ExactArgs(1),
	}
	f := addClientFlags(cmd)
	cmd.Flags().Uint64Var(&id, "id", 0, "the lease id to use (default: the server chooses)")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		ttl, err := time.ParseDuration(args[0])
		if err != nil {
			secs, serr := strconv.ParseUint(args[0], 10, 32)
			if serr != nil {
				return usagef("TTL %q is neither a duration (10s) nor a number of seconds", args[0])
			}
			ttl = time.Duration(secs) * time.Second
		}
		if ttl <= 0 {
			return usagef("TTL %q must be positive", args[0])
		}
		return f.request(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
			l, err := c.Grant(ctx, ttl, id)
			var apiErr *client.APIError
			if errors.As(err, &apiErr) && apiErr.Code == "lease_exists" {
				return &client.PreconditionFailedError{APIError: *apiErr}
			}
			if err != nil {
				return err
			}
			if p.json {
				return p.object(l)
			}
			return p.text([]byte(strconv.FormatUint(l.ID, 10)))
		})
	}
	return cmd
}

func newLeaseKeepAliveCommand() *cobra.Command {
	var once bool
	cmd := &cobra.Command{
		Use:   "keepalive ID",
		Short: "Renew a lease until interrupted",
		Long: `Renew lease ID every third of its TTL, printing each renewal, until
interrupted (SIGINT or SIGTERM: exit 0; the lease then expires after its
TTL unless revoked). --once renews it once. A lease that expired or was
revoked exits 3; one that could not be renewed within its TTL exits 1.`,
		Example: `  raftkv lease keepalive 1234
  raftkv lease keepalive 1234 --once -o json`,
		Args: cobra.ExactArgs(1),
	}
	f := addClientFlags(cmd)
	cmd.Flags().BoolVar(&once, "once", false, "renew once and exit")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		id, err := parseLeaseArg(args[0])
		if err != nil {
			return err
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
		renewed := time.Now()
		var ttl time.Duration
		for {
			rctx, cancel := context.WithTimeout(ctx, f.timeout)
			start := time.Now()
			l, err := c.KeepAliveOnce(rctx, id)
			cancel()
			switch {
			case ctx.Err() != nil:
				return nil
			case errors.Is(err, client.ErrLeaseNotFound):
				return err
			case err != nil && (once || ttl == 0 || time.Since(renewed) > ttl):
				return fmt.Errorf("%w: %w", client.ErrLeaseLost, err)
			case err == nil:
				renewed, ttl = start, time.Duration(l.TTLMs)*time.Millisecond
				if p.json {
					err = p.object(l)
				} else {
					err = p.text(fmt.Appendf(nil, "lease %d kept alive with TTL %v", l.ID, ttl))
				}
				if err != nil || once {
					return err
				}
			}
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(max(ttl/3, 100*time.Millisecond)):
			}
		}
	}
	return cmd
}

func newLeaseRevokeCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "revoke ID",
		Short: "Revoke a lease, deleting its keys",
		Long: `Revoke lease ID: every key attached to it is deleted, at one revision. Prints
that revision and the number of keys deleted. A lease that does not exist
exits 3.`,
		Args: cobra.ExactArgs(1),
	}
	f := addClientFlags(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		id, err := parseLeaseArg(args[0])
		if err != nil {
			return err
		}
		return f.request(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
			r, err := c.Revoke(ctx, id)
			if err != nil {
				return err
			}
			if p.json {
				return p.object(r)
			}
			return p.text(fmt.Appendf(nil, "lease %d revoked at revision %d, %d keys deleted", id, r.Revision, r.Deleted))
		})
	}
	return cmd
}

func newLeaseShowCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "show ID",
		Short: "Show a lease: its TTL, the time it has left and its keys",
		Long: `Show lease ID as its leader counts it: the TTL, the time left before it
expires, and the keys attached to it (those you may read), one per line.`,
		Args: cobra.ExactArgs(1),
	}
	f := addClientFlags(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		id, err := parseLeaseArg(args[0])
		if err != nil {
			return err
		}
		return f.request(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
			st, err := c.TimeToLive(ctx, id)
			if err != nil {
				return err
			}
			if p.json {
				return p.object(st)
			}
			lines := [][]byte{fmt.Appendf(nil, "lease %d: TTL %v, %v left, %d keys", st.ID,
				time.Duration(st.TTLMs)*time.Millisecond, time.Duration(st.RemainingMs)*time.Millisecond, len(st.Keys))}
			return p.text(append(lines, st.Keys...)...)
		})
	}
	return cmd
}

func newLeaseListCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the leases: id and TTL, one per line",
		Args:  cobra.NoArgs,
	}
	f := addClientFlags(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		return f.request(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
			ls, err := c.Leases(ctx)
			if err != nil {
				return err
			}
			for _, l := range ls {
				if p.json {
					err = p.object(l)
				} else {
					err = p.text(fmt.Appendf(nil, "%d %v", l.ID, time.Duration(l.TTLMs)*time.Millisecond))
				}
				if err != nil {
					return err
				}
			}
			return nil
		})
	}
	return cmd
}
