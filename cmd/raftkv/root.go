package main

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func newRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:           "raftkv COMMAND",
		Short:         "A replicated key-value server built on etcd's raft",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newServeCommand(), newBenchCommand(), newVersionCommand(), newPutCommand(), newGetCommand(), newDelCommand(), newListCommand(), newWatchCommand(), newMemberCommand(), newStatusCommand(), newLeaderCommand(), newHealthCommand(), newCertCommand(), newAuthCommand(), newSnapshotCommand(), newDataCommand(), newTxnCommand(), newLeaseCommand(), newLockCommand(), newElectCommand())
	root.Args = cobra.ArbitraryArgs
	root.RunE = func(cmd *cobra.Command, args []string) error {
		if len(args) > 0 {
			return usagef("unknown command %q", args[0])
		}
		return cmd.Help()
	}
	// A bad flag of any command (serve sets its own) is a usage error:
	// exit 2 with the usage.
	usageErrors(root)
	return root
}

// commandGroup makes cmd, which only holds subcommands, refuse a missing or
// unknown one as a usage error (exit 2), as every other bad command line
// is, instead of printing its help and exiting 0.
func commandGroup(cmd *cobra.Command, commands string) {
	cmd.Args = cobra.ArbitraryArgs
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if len(args) > 0 {
			return usagef("unknown command %q for %q", args[0], cmd.CommandPath())
		}
		return usagef("%s needs a command: %s", cmd.Name(), commands)
	}
}

func newVersionCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintln(cmd.OutOrStdout(), "raftkv", version)
			return err
		},
	}
	usageErrors(cmd)
	return cmd
}

// flagProblem says what is wrong with a flag's value in the command line's
// terms: pflag's message repeats the value and quotes strconv's
// ("invalid argument "abc" for "--port" flag: strconv.ParseInt: parsing
// "abc": invalid syntax").
func flagProblem(err error) error {
	var invalid *pflag.InvalidValueError
	if !errors.As(err, &invalid) {
		return err
	}
	if errors.Is(err, strconv.ErrRange) {
		return fmt.Errorf("--%s %q: out of range", invalid.GetFlag().Name, invalid.GetValue())
	}
	return fmt.Errorf("--%s %q: want %s", invalid.GetFlag().Name, invalid.GetValue(), flagValueKind(invalid.GetFlag()))
}

// flagValueKind describes the values a flag takes.
func flagValueKind(f *pflag.Flag) string {
	switch t := f.Value.Type(); t {
	case "int", "int64", "int32":
		return "an integer"
	case "uint", "uint64", "uint32":
		return "a non-negative integer"
	case "duration":
		return "a duration such as 500ms, 10s or 5m"
	case "bool":
		return "true or false"
	default:
		return "a " + t
	}
}

// applyEnv sets every flag the command line left unset from RAFTKV_<FLAG>,
// with the flag's name upper-cased and dashes turned into underscores.
func applyEnv(flags *pflag.FlagSet) error {
	var err error
	flags.VisitAll(func(f *pflag.Flag) {
		if err != nil || f.Changed {
			return
		}
		name := "RAFTKV_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v, ok := os.LookupEnv(name); ok {
			if serr := flags.Set(f.Name, v); serr != nil {
				err = fmt.Errorf("%s=%q: want %s", name, v, flagValueKind(f))
			}
		}
	})
	return err
}
