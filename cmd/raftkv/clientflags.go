package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/raftkv/raftkv/client"
	"github.com/raftkv/raftkv/listener"
)

// Exit codes of raftkv. The client commands (put, get, del, list, watch)
// use them all; health exits 5 when an endpoint is unhealthy; bench exits
// 0, 1 or 2, or as a client command when --cleanup fails; cert exits 2 for
// a bad command line; data verify exits 7 for a damaged data dir. Usage
// errors (2) print the command's usage. docs/CLI.md documents them.
const (
	exitOK = 0
	// exitError is any other failure: a bad answer, a server error, a
	// compacted watch, a failure to write the output.
	exitError = 1
	// exitUsage is a bad command line of a client command.
	exitUsage = 2
	// exitNotFound: the key does not exist (get, del), or the lease.
	exitNotFound = 3
	// exitPrecondition: --if-match or --create-only did not hold; nothing
	// changed.
	exitPrecondition = 4
	// exitUnavailable: no endpoint could serve the request (unreachable,
	// 503, or the timeout passed before it was sent); nothing changed,
	// retrying is safe.
	exitUnavailable = 5
	// exitOutcomeUnknown: a write reached the cluster but its result did
	// not come back; it may or may not have been applied.
	exitOutcomeUnknown = 6
	// exitDamaged: data verify found damage in the data dir.
	exitDamaged = 7
)

// defaultEndpoints are the client URLs of the Procfile's three nodes.
const defaultEndpoints = "http://127.0.0.1:12380,http://127.0.0.1:22380,http://127.0.0.1:32380"

// usageError is a bad command line: exit code 2.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error {
	return &usageError{fmt.Errorf(format, args...)}
}

// exitCode maps the error that ended a command to the process's exit code.
func exitCode(err error) int {
	var usage *usageError
	var precondition *client.PreconditionFailedError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &usage):
		return exitUsage
	case errors.Is(err, client.ErrOutcomeUnknown):
		return exitOutcomeUnknown
	case errors.As(err, &precondition):
		return exitPrecondition
	case errors.Is(err, client.ErrNotFound), errors.Is(err, client.ErrLeaseNotFound):
		return exitNotFound
	case errors.Is(err, client.ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		return exitUnavailable
	default:
		return exitError
	}
}

// clientFlags are the flags every client command shares.
type clientFlags struct {
	endpoints string
	timeout   time.Duration
	output    string
	tls       tlsFlags
	creds     credFlags
	// set holds just these flags, so that only they are read from the
	// environment: RAFTKV_PREFIX=true must not turn a del into a range
	// delete.
	set *pflag.FlagSet
}

// addClientFlags registers the shared flags on cmd, makes its flag and
// argument errors usage errors, and returns the flags.
func addClientFlags(cmd *cobra.Command) *clientFlags {
	f := &clientFlags{set: pflag.NewFlagSet(cmd.Name(), pflag.ContinueOnError)}
	f.set.StringVar(&f.endpoints, "endpoints", defaultEndpoints, "comma-separated client URLs of the cluster's nodes (env RAFTKV_ENDPOINTS)")
	f.set.DurationVar(&f.timeout, "timeout", 10*time.Second, "how long a request may take, failover included (env RAFTKV_TIMEOUT)")
	f.set.StringVarP(&f.output, "output", "o", "text", "output format: text or json (env RAFTKV_OUTPUT)")
	f.tls.register(f.set)
	f.creds.register(f.set)
	cmd.Flags().AddFlagSet(f.set)
	usageErrors(cmd)
	return f
}

// usageErrors makes cmd's flag and argument errors usage errors (exit 2).
// Call it after cmd.Args is set.
func usageErrors(cmd *cobra.Command) {
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &usageError{flagProblem(err)} })
	if args := cmd.Args; args != nil {
		cmd.Args = func(cmd *cobra.Command, a []string) error {
			if err := args(cmd, a); err != nil {
				// cobra says "accepts 1 arg(s), received 0"; the Use line
				// names them.
				want := strings.TrimSpace(strings.TrimPrefix(cmd.Use, cmd.Name()))
				if want == "" {
					want = "no arguments"
				}
				return usagef("%s takes %s; got %d argument(s)", strings.TrimPrefix(cmd.CommandPath(), cmd.Root().Name()+" "), want, len(a))
			}
			return nil
		}
	}
}

// client reads the environment, checks the flags and returns a client and
// the output printer. The caller closes the client.
func (f *clientFlags) client(cmd *cobra.Command) (*client.Client, *printer, error) {
	if err := applyEnv(f.set); err != nil {
		return nil, nil, &usageError{err}
	}
	if f.output != "text" && f.output != "json" {
		return nil, nil, usagef("--output %q: use text or json", f.output)
	}
	if f.timeout <= 0 {
		return nil, nil, usagef("--timeout %v must be positive", f.timeout)
	}
	var endpoints []string
	for e := range strings.SplitSeq(f.endpoints, ",") {
		if e = strings.TrimSpace(e); e != "" {
			endpoints = append(endpoints, e)
		}
	}
	tlsConfig, err := f.tls.config()
	if err != nil {
		return nil, nil, err
	}
	opts, err := f.creds.options()
	if err != nil {
		return nil, nil, err
	}
	c, err := client.New(endpoints, append(opts, client.WithTLS(tlsConfig))...)
	if err != nil {
		return nil, nil, &usageError{fmt.Errorf("--endpoints: %w", err)}
	}
	return c, &printer{w: cmd.OutOrStdout(), json: f.output == "json"}, nil
}

// tlsFlags are etcdctl's TLS flags, for https endpoints: the client
// commands and bench take them.
type tlsFlags struct {
	caFile, certFile, keyFile string
	insecureSkipVerify        bool
}

func (f *tlsFlags) register(set *pflag.FlagSet) {
	set.StringVar(&f.caFile, "cacert", "", "verify the servers' certificates with the CA bundle in `FILE` (PEM) instead of the system's CAs (env RAFTKV_CACERT)")
	set.StringVar(&f.certFile, "cert", "", "client certificate in `FILE` (PEM), for servers that require one; needs --key (env RAFTKV_CERT)")
	set.StringVar(&f.keyFile, "key", "", "key of --cert in `FILE` (PEM) (env RAFTKV_KEY)")
	set.BoolVar(&f.insecureSkipVerify, "insecure-skip-tls-verify", false, "do not verify the servers' certificates: for testing only (env RAFTKV_INSECURE_SKIP_TLS_VERIFY)")
}

// config returns the TLS config of the flags, nil when none is set (https
// endpoints are then verified against the system's CAs). --cert without
// --key, or the reverse, is a usage error; a file that cannot be read or
// holds no certificate is an error that names the flag.
func (f *tlsFlags) config() (*tls.Config, error) {
	if (f.certFile == "") != (f.keyFile == "") {
		return nil, usagef("--cert and --key go together: give both or neither")
	}
	if f.caFile == "" && f.certFile == "" && !f.insecureSkipVerify {
		return nil, nil
	}
	cfg := &tls.Config{InsecureSkipVerify: f.insecureSkipVerify}
	if f.caFile != "" {
		pool, err := listener.LoadCAPool(f.caFile)
		if err != nil {
			return nil, fmt.Errorf("--cacert: %w", err)
		}
		cfg.RootCAs = pool
	}
	if f.certFile != "" {
		cert, err := tls.LoadX509KeyPair(f.certFile, f.keyFile)
		if err != nil {
			return nil, fmt.Errorf("--cert %s --key %s: %w", f.certFile, f.keyFile, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// requestContext returns the context of one request: cmd's, bounded by --timeout.
// request runs do with a client and a context bounded by --timeout: the
// shape of a command that makes one request.
func (f *clientFlags) request(cmd *cobra.Command, do func(ctx context.Context, c *client.Client, p *printer) error) error {
	c, p, err := f.client(cmd)
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := f.requestContext(cmd)
	defer cancel()
	return do(ctx, c, p)
}

func (f *clientFlags) requestContext(cmd *cobra.Command) (context.Context, context.CancelFunc) {
	ctx := cmd.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	return context.WithTimeout(ctx, f.timeout)
}

// printer writes results as text or as one JSON object per line.
type printer struct {
	w    io.Writer
	json bool
}

// text writes lines, each followed by a newline.
func (p *printer) text(lines ...[]byte) error {
	var b []byte
	for _, l := range lines {
		b = append(append(b, l...), '\n')
	}
	_, err := p.w.Write(b)
	return err
}

// object writes v as one line of JSON.
func (p *printer) object(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = p.w.Write(append(b, '\n'))
	return err
}

// kvJSON is a key in JSON output: keys and values in base64, as in the API.
// Value is left out with --keys-only, and present (maybe "") otherwise.
type kvJSON struct {
	Key            []byte  `json:"key"`
	Value          *[]byte `json:"value,omitempty"`
	CreateRevision uint64  `json:"create_revision"`
	ModRevision    uint64  `json:"mod_revision"`
	Version        uint64  `json:"version"`
	Revision       uint64  `json:"revision"`
}

func toKVJSON(kv client.KV, withValue bool) kvJSON {
	j := kvJSON{Key: kv.Key, CreateRevision: kv.CreateRevision,
		ModRevision: kv.ModRevision, Version: kv.Version, Revision: kv.Revision}
	if withValue {
		if kv.Value == nil {
			kv.Value = []byte{}
		}
		j.Value = &kv.Value
	}
	return j
}

// parseConsistency checks a --consistency flag.
func parseConsistency(s string) (client.Consistency, error) {
	switch c := client.Consistency(s); c {
	case client.Linearizable, client.Serializable:
		return c, nil
	}
	return "", usagef("--consistency %q: use linearizable or serializable", s)
}
