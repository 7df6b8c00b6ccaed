package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/raftkv/raftkv/client"
)

// commandExit is the exit status of the command lock ran, which becomes
// raftkv's own.
type commandExit struct{ code int }

func (e *commandExit) Error() string { return fmt.Sprintf("the command exited with status %d", e.code) }

// killGrace is how long a command whose lock was lost has to stop after
// SIGTERM before it is killed.
const killGrace = 10 * time.Second

func newLockCommand() *cobra.Command {
	var ttl time.Duration
	cmd := &cobra.Command{
		Use:   "lock NAME [-- COMMAND [ARGS...]]",
		Short: "Hold a distributed lock, while a command runs or until interrupted",
		Long: `Wait for the lock NAME, then hold it: while COMMAND runs, or, without one,
until interrupted (SIGINT or SIGTERM), then release it. Waiters are served in
the order they asked, each watching only the one before it.

Without COMMAND, prints the lock's key and its fencing token, then waits.
With COMMAND, runs it with RAFTKV_LOCK_KEY and RAFTKV_LOCK_REVISION (the
fencing token) in its environment, exits with its status, and forwards
SIGINT and SIGTERM to it.

The lock is held with a lease of --ttl, renewed while raftkv runs. If raftkv
cannot renew it within the TTL (it was partitioned from the cluster, or
paused), the lease expires and another waiter gets the lock: raftkv then
sends COMMAND SIGTERM (SIGKILL after 10s) and exits 1. A lock alone cannot
stop a paused holder from acting late, so a command that changes a shared
resource must pass the fencing token along and the resource must refuse a
token lower than the highest it has seen (docs/LOCKS.md).`,
		Example: `  raftkv lock backups -- ./nightly-backup.sh
  raftkv lock deploy --ttl 30s -- sh -c 'deploy --fencing-token "$RAFTKV_LOCK_REVISION"'`,
		Args: cobra.MinimumNArgs(1),
	}
	f := addClientFlags(cmd)
	cmd.Flags().DurationVar(&ttl, "ttl", client.DefaultSessionTTL, "TTL of the lease the lock is held with")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		name, command := args[0], args[1:]
		if dash := cmd.ArgsLenAtDash(); dash > 1 || (dash == -1 && len(args) > 1) {
			return usagef("lock takes NAME, then -- and the command to run")
		}
		if name == "" {
			return usagef("empty lock name")
		}
		c, p, err := f.client(cmd)
		if err != nil {
			return err
		}
		defer c.Close()
		ctx, stop := signalContext(cmd)
		defer stop()
		s, err := newSession(ctx, c, f.timeout, ttl)
		if err != nil {
			return err
		}
		defer closeSession(s, f.timeout)
		m := client.NewMutex(s, name)
		if err := m.Lock(ctx); err != nil {
			if ctx.Err() != nil {
				return errors.New("interrupted while waiting for the lock")
			}
			return err
		}
		defer func() {
			uctx, cancel := context.WithTimeout(context.Background(), f.timeout)
			defer cancel()
			_ = m.Unlock(uctx)
		}()
		if len(command) == 0 {
			if p.json {
				err = p.object(struct {
					Key      []byte `json:"key"`
					Revision uint64 `json:"revision"`
				}{m.Key(), m.Revision()})
			} else {
				err = p.text(fmt.Appendf(nil, "%s %d", m.Key(), m.Revision()))
			}
			if err != nil {
				return err
			}
			select {
			case <-ctx.Done():
				return nil
			case <-s.Done():
				return fmt.Errorf("lock %q lost: %w", name, s.Err())
			}
		}
		child := exec.Command(command[0], command[1:]...)
		child.Stdin, child.Stdout, child.Stderr = cmd.InOrStdin(), cmd.OutOrStdout(), cmd.ErrOrStderr()
		child.Env = append(os.Environ(), "RAFTKV_LOCK_KEY="+string(m.Key()), "RAFTKV_LOCK_REVISION="+strconv.FormatUint(m.Revision(), 10))
		return runHolding(child, s, "lock "+strconv.Quote(name))
	}
	return cmd
}

// runHolding runs child while the session holds what it guards: it forwards
// SIGINT and SIGTERM to it, and stops it if the session is lost.
func runHolding(child *exec.Cmd, s *client.Session, what string) error {
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	if err := child.Start(); err != nil {
		return fmt.Errorf("start %s: %w", child.Path, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- child.Wait() }()
	var lost error
	for {
		select {
		case sig := <-sigs:
			_ = child.Process.Signal(sig)
			continue
		case <-s.Done():
			lost = fmt.Errorf("%s lost, stopped the command: %w", what, s.Err())
			_ = child.Process.Signal(syscall.SIGTERM)
			select {
			case err := <-exited:
				exited <- err
			case <-time.After(killGrace):
				_ = child.Process.Kill()
			}
		case err := <-exited:
			exited <- err
		}
		break
	}
	err := <-exited
	if lost != nil {
		return lost
	}
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		return &commandExit{code: exitErr.ExitCode()}
	}
	return err
}

func newElectCommand() *cobra.Command {
	var ttl time.Duration
	var listen bool
	cmd := &cobra.Command{
		Use:   "elect NAME [PROPOSAL]",
		Short: "Campaign in a leader election, or follow who leads",
		Long: `Campaign in the election NAME with PROPOSAL (an address, a name): wait until
elected, print the leader's key and proposal, and lead until interrupted
(SIGINT or SIGTERM), then resign. Candidates are elected in the order they
campaigned; leadership is held with a lease of --ttl, renewed while raftkv
runs; if it cannot be renewed, raftkv exits 1 and another candidate leads.

With --listen, print the proposal of each leader as leadership changes,
starting with the current one, until interrupted.`,
		Example: `  raftkv elect scheduler node-a:9000
  raftkv elect --listen scheduler`,
		Args: cobra.RangeArgs(1, 2),
	}
	f := addClientFlags(cmd)
	cmd.Flags().DurationVar(&ttl, "ttl", client.DefaultSessionTTL, "TTL of the lease leadership is held with")
	cmd.Flags().BoolVar(&listen, "listen", false, "print each new leader's proposal instead of campaigning")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		name := args[0]
		switch {
		case name == "":
			return usagef("empty election name")
		case listen && len(args) == 2:
			return usagef("elect --listen takes only NAME")
		case !listen && len(args) == 1:
			return usagef("elect takes NAME and PROPOSAL, or --listen NAME")
		}
		c, p, err := f.client(cmd)
		if err != nil {
			return err
		}
		defer c.Close()
		ctx, stop := signalContext(cmd)
		defer stop()
		show := func(kv client.KV) error {
			if p.json {
				return p.object(struct {
					Key      []byte `json:"key"`
					Value    []byte `json:"value"`
					Revision uint64 `json:"revision"`
				}{kv.Key, kv.Value, kv.CreateRevision})
			}
			return p.text(kv.Value)
		}
		if listen {
			for leader, err := range c.Observe(ctx, name) {
				if err != nil {
					return err
				}
				if leader.Key != nil {
					if err := show(leader); err != nil {
						return err
					}
				}
			}
			return nil
		}
		s, err := newSession(ctx, c, f.timeout, ttl)
		if err != nil {
			return err
		}
		defer closeSession(s, f.timeout)
		e := client.NewElection(s, name)
		if err := e.Campaign(ctx, []byte(args[1])); err != nil {
			if ctx.Err() != nil {
				return errors.New("interrupted while campaigning")
			}
			return err
		}
		if err := show(client.KV{Key: e.Key(), Value: []byte(args[1]), CreateRevision: e.Revision()}); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			rctx, cancel := context.WithTimeout(context.Background(), f.timeout)
			defer cancel()
			return e.Resign(rctx)
		case <-s.Done():
			return fmt.Errorf("leadership of %q lost: %w", name, s.Err())
		}
	}
	return cmd
}

// signalContext is cmd's context, ended by SIGINT or SIGTERM.
func signalContext(cmd *cobra.Command) (context.Context, context.CancelFunc) {
	ctx := cmd.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	return signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
}

// newSession grants the lease locks and elections are held with.
func newSession(ctx context.Context, c *client.Client, timeout, ttl time.Duration) (*client.Session, error) {
	gctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return c.NewSession(gctx, ttl)
}

// closeSession revokes the session's lease, which releases what it held
// even if a release request failed.
func closeSession(s *client.Session, timeout time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	_ = s.Close(ctx)
}
