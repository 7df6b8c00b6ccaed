package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/raftkv/raftkv/pki"
)

// Files in the certs dir. The names are the ones the README's TLS example
// passes to `serve` and to the client commands, so that it runs as written.
const (
	caCertName   = "ca.pem"
	caKeyName    = "ca-key.pem"
	nodeCertName = "node.pem"
	nodeKeyName  = "node-key.pem"
)

// clientCertNames are the files of client NAME: client.NAME.pem and its key
// client.NAME-key.pem, as CockroachDB names client.NAME.crt.
func clientCertNames(name string) (cert, key string) {
	return "client." + name + ".pem", "client." + name + "-key.pem"
}

// Lifetimes: CockroachDB's defaults, a CA that outlives the certificates it
// signs.
const (
	defaultCALifetime   = 10 * 366 * 24 * time.Hour
	defaultCertLifetime = 5 * 366 * 24 * time.Hour
	caCommonName        = "raftkv CA"
)

// defaultNodeHosts are the hosts of a node certificate made without any:
// loopback, where the README's cluster runs.
func defaultNodeHosts() []string { return []string{"localhost", "127.0.0.1", "::1"} }

// validClientName reports whether name is usable in a file name: letters,
// digits, '.', '_' and '-', not starting with '.' or '-'.
func validClientName(name string) bool {
	for i, r := range name {
		letterOrDigit := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9'
		if !letterOrDigit && (i == 0 || !strings.ContainsRune("._-", r)) {
			return false
		}
	}
	return name != ""
}

type certFlags struct {
	certsDir  string
	caKey     string
	lifetime  time.Duration
	overwrite bool
}

func newCertCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cert COMMAND",
		Short: "Create a CA, node and client certificates for TLS",
		Long: `Create the certificates of a TLS cluster in a certs dir (default ./certs):

  raftkv cert create-ca                    ca.pem, ca-key.pem
  raftkv cert create-node 127.0.0.1 ...    node.pem, node-key.pem
  raftkv cert create-client NAME           client.NAME.pem, client.NAME-key.pem

Keys are ECDSA P-256, written readable by their owner only. Existing files are
never replaced without --overwrite.`,
	}
	commandGroup(cmd, "create-ca, create-node or create-client")
	cmd.AddCommand(newCertCreateCACommand(), newCertCreateNodeCommand(), newCertCreateClientCommand())
	return cmd
}

// registerCertFlags adds the flags every cert subcommand takes.
func registerCertFlags(cmd *cobra.Command, lifetime time.Duration) *certFlags {
	f := &certFlags{}
	fl := cmd.Flags()
	fl.StringVar(&f.certsDir, "certs-dir", "certs", "directory of the certificates and keys")
	fl.StringVar(&f.caKey, "ca-key", "", "the CA's key (default <certs-dir>/"+caKeyName+"); keep it on the machine that makes certificates")
	fl.DurationVar(&f.lifetime, "lifetime", lifetime, "how long the certificate is valid")
	fl.BoolVar(&f.overwrite, "overwrite", false, "replace existing files")
	usageErrors(cmd)
	return f
}

func (f *certFlags) check() error {
	if f.certsDir == "" {
		return usagef("--certs-dir must not be empty")
	}
	if f.lifetime <= 0 {
		return usagef("--lifetime %v must be positive", f.lifetime)
	}
	if f.caKey == "" {
		f.caKey = filepath.Join(f.certsDir, caKeyName)
	}
	return nil
}

func (f *certFlags) path(name string) string { return filepath.Join(f.certsDir, name) }

// loadCA reads the CA that create-ca made.
func (f *certFlags) loadCA() (*pki.KeyPair, error) {
	ca, err := pki.LoadCA(f.path(caCertName), f.caKey)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w; create the CA first with `raftkv cert create-ca` (or point --certs-dir and --ca-key at it)", err)
	}
	return ca, err
}

// write writes pair to the certs dir and says what it wrote.
func (f *certFlags) write(out io.Writer, pair *pki.KeyPair, certName, keyFile, what string) error {
	certFile := f.path(certName)
	if err := pair.Write(certFile, keyFile, f.overwrite); err != nil {
		if errors.Is(err, pki.ErrExists) {
			return fmt.Errorf("%w (--overwrite replaces it)", err)
		}
		return err
	}
	_, err := fmt.Fprintf(out, "wrote %s and %s: %s, valid until %s\n", certFile, keyFile, what, pair.Cert.NotAfter.UTC().Format(time.DateOnly))
	return err
}

func newCertCreateCACommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "create-ca",
		Short: "Create the certificate authority that signs the node and client certificates",
		Long: `Create a certificate authority: ca.pem, which every node and client trusts
(--trusted-ca-file, --peer-trusted-ca-file, --cacert), and its key ca-key.pem,
which signs the node and client certificates. Keep the key secret: anyone who
has it can make certificates the cluster accepts.`,
		Example: `  raftkv cert create-ca --certs-dir certs`,
		Args:    cobra.NoArgs,
	}
	f := registerCertFlags(cmd, defaultCALifetime)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if err := f.check(); err != nil {
			return err
		}
		// The dir holds a key: private, as CockroachDB makes its certs dir.
		if err := os.MkdirAll(f.certsDir, 0o700); err != nil {
			return fmt.Errorf("--certs-dir: %w", err)
		}
		ca, err := pki.NewCA(caCommonName, f.lifetime)
		if err != nil {
			return err
		}
		return f.write(cmd.OutOrStdout(), ca, caCertName, f.caKey, fmt.Sprintf("CA %q", caCommonName))
	}
	return cmd
}

func newCertCreateNodeCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "create-node [HOST...]",
		Short: "Create a node certificate for the hosts the node is reached at",
		Long: `Create node.pem and node-key.pem, signed by the CA, for a node reached at the
given hosts: IP addresses and DNS names (without scheme or port). Without
hosts: ` + strings.Join(defaultNodeHosts(), ", ") + `.

The certificate is valid both for serving and as a client certificate: a node
uses it for --cert-file and --peer-cert-file, and presents it to its peers
and, when it forwards a request, to the leader's client port, which
--client-cert-auth and --peer-client-cert-auth require.

Nodes on several machines each need a certificate for their own hosts: make
each in its own --certs-dir (with --ca-key pointing at the CA's key and ca.pem
copied in), then copy ca.pem, node.pem and node-key.pem to that machine.`,
		Example: `  raftkv cert create-node 127.0.0.1 localhost
  raftkv cert create-node 10.0.0.7 node7.example.com --certs-dir node7 --ca-key certs/ca-key.pem`,
	}
	f := registerCertFlags(cmd, defaultCertLifetime)
	cmd.RunE = func(cmd *cobra.Command, hosts []string) error {
		if err := f.check(); err != nil {
			return err
		}
		if len(hosts) == 0 {
			hosts = defaultNodeHosts()
		}
		ca, err := f.loadCA()
		if err != nil {
			return err
		}
		node, err := ca.IssueNode(hosts, f.lifetime)
		if err != nil {
			return &usageError{err}
		}
		return f.write(cmd.OutOrStdout(), node, nodeCertName, f.path(nodeKeyName),
			"node certificate for "+strings.Join(hosts, ", ")+" (server and client auth)")
	}
	return cmd
}

func newCertCreateClientCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "create-client NAME",
		Short: "Create a client certificate",
		Long: `Create client.NAME.pem and client.NAME-key.pem, signed by the CA: a certificate
for client authentication only, with common name NAME, for curl (--cert,
--key) and the raftkv client commands (--cert, --key) when the nodes run with
--client-cert-auth. NAME is letters, digits, '.', '_' and '-'.`,
		Example: `  raftkv cert create-client alice
  ./bin/raftkv get k --endpoints https://127.0.0.1:12380 --cacert certs/ca.pem --cert certs/client.alice.pem --key certs/client.alice-key.pem`,
		Args: cobra.ExactArgs(1),
	}
	f := registerCertFlags(cmd, defaultCertLifetime)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := f.check(); err != nil {
			return err
		}
		name := args[0]
		if !validClientName(name) {
			return usagef("client name %q: use letters, digits, '.', '_' and '-', starting with a letter or digit", name)
		}
		ca, err := f.loadCA()
		if err != nil {
			return err
		}
		client, err := ca.IssueClient(name, f.lifetime)
		if err != nil {
			return err
		}
		certName, keyName := clientCertNames(name)
		return f.write(cmd.OutOrStdout(), client, certName, f.path(keyName), fmt.Sprintf("client certificate for %q (client auth)", name))
	}
	return cmd
}
