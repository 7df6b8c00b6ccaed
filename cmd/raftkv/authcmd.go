package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/raftkv/raftkv/auth"
)

// newAuthCommand makes the secrets of an auth file: raftkv never needs the
// plain passwords and tokens once their hashes are in the file.
func newAuthCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "auth",
		Short: "Make password hashes and tokens for --auth-file",
		Long: `Make the secrets of an auth file (see docs/SECURITY.md). The file holds only
their bcrypt hashes; edit it and send the node SIGHUP to apply it.`,
	}
	commandGroup(cmd, "hash or token")
	usageErrors(cmd)
	cmd.AddCommand(newAuthHashCommand(), newAuthTokenCommand())
	return cmd
}

func newAuthHashCommand() *cobra.Command {
	var cost int
	cmd := &cobra.Command{
		Use:   "hash",
		Short: "Print the bcrypt hash of a password read from standard input",
		Long: `Read a password from standard input (the first line; on a terminal, typed
without echo) and print its bcrypt hash, for a user's "password_hash".`,
		Example: `  raftkv auth hash                     # asks for the password
  printf '%s\n' "$PW" | raftkv auth hash`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			password, err := readPassword(cmd.InOrStdin(), cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			hash, err := auth.HashPassword(password, cost)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(cmd.OutOrStdout(), hash)
			return err
		},
	}
	addCostFlag(cmd, &cost)
	usageErrors(cmd)
	return cmd
}

func newAuthTokenCommand() *cobra.Command {
	var output string
	var cost int
	cmd := &cobra.Command{
		Use:   "token NAME",
		Short: "Make a new random token and print it with its bcrypt hash",
		Long: `Make a new random token NAME.SECRET (256 bits of secret) and print it with its
bcrypt hash. Put the hash in the auth file under "tokens" as NAME's
"token_hash"; give the token to the client, which sends it with --token or as
Authorization: Bearer. It is shown once: raftkv keeps only the hash.`,
		Example: `  raftkv auth token deploy`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if output != "text" && output != "json" {
				return usagef("--output %q: use text or json", output)
			}
			token, hash, err := auth.NewToken(args[0], cost)
			if err != nil {
				return usagef("%v", err)
			}
			p := &printer{w: cmd.OutOrStdout(), json: output == "json"}
			if p.json {
				return p.object(map[string]string{"name": args[0], "token": token, "token_hash": hash})
			}
			return p.text([]byte("token: "+token), []byte("token_hash: "+hash))
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json")
	addCostFlag(cmd, &cost)
	usageErrors(cmd)
	return cmd
}

// addCostFlag adds --cost: each step doubles the time a check takes, for
// the node and for someone guessing at a stolen hash.
func addCostFlag(cmd *cobra.Command, cost *int) {
	cmd.Flags().IntVar(cost, "cost", auth.DefaultCost, fmt.Sprintf("bcrypt cost, %d to 31: each step doubles the time of a check", auth.MinCost))
}

// readPassword reads one line from in; from a terminal, without echo and
// asking on prompt.
func readPassword(in io.Reader, prompt io.Writer) (string, error) {
	if f, ok := in.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprint(prompt, "password: ")
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(prompt)
		if err != nil {
			return "", err
		}
		return string(b), nil
	}
	line, err := bufio.NewReader(in).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", err
	}
	password := strings.TrimRight(line, "\r\n")
	if password == "" {
		return "", errors.New("no password on standard input")
	}
	return password, nil
}
