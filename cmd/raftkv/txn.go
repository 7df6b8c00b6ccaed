package main

import (
	"fmt"
	"io"
	"os"
	"strconv"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/raftkv/raftkv/client"
)

func newTxnCommand() *cobra.Command {
	var interactive bool
	cmd := &cobra.Command{
		Use:   "txn",
		Short: "Apply compares and requests read from standard input as one transaction",
		Long: `Read a transaction from standard input in etcdctl's txn format and apply it
atomically (POST /v1/txn): compares, one per line; an empty line; the
requests to run if every compare holds; an empty line; the requests to run
otherwise.

Compares: value("KEY") OP "VALUE", version("KEY") OP "N", create("KEY") OP "N"
or mod("KEY") OP "N", with OP =, !=, < or > (a missing key has version,
create and mod revision 0). Requests: put KEY VALUE, del KEY,
del --prefix PREFIX, get KEY, get --prefix PREFIX [--limit N]. Words are split
at spaces; "..." is a Go string (\n, \", \xff), '...' is taken as it is.

Prints SUCCESS or FAILURE, then for each request an empty line and its result
as put, del, get and list print it (a get of a missing key prints nothing).
Either branch exits 0: the transaction ran. A line that cannot be read exits 2
naming it; the other exit codes are put's.`,
		Example: `  raftkv txn <<'EOF'
  mod("acct/alice") = "42"

  put acct/alice 70
  put acct/bob 30

  get acct/alice
  EOF
  raftkv txn -i`,
		Args: cobra.NoArgs,
	}
	f := addClientFlags(cmd)
	cmd.Flags().BoolVarP(&interactive, "interactive", "i", false, "from a terminal, prompt for each section on standard error")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		c, p, err := f.client(cmd)
		if err != nil {
			return err
		}
		defer c.Close()
		var prompt func(string)
		if in, ok := cmd.InOrStdin().(*os.File); ok && interactive && term.IsTerminal(int(in.Fd())) {
			prompt = func(s string) { fmt.Fprintln(cmd.ErrOrStderr(), s) }
		}
		req, err := parseTxn(cmd.InOrStdin(), prompt)
		if err != nil {
			return err
		}
		ctx, cancel := f.requestContext(cmd)
		defer cancel()
		res, err := c.Txn(ctx, req)
		if err != nil {
			return err
		}
		if p.json {
			return p.object(res)
		}
		ops := req.Success
		if !res.Succeeded {
			ops = req.Failure
		}
		warnTruncatedLists(cmd.ErrOrStderr(), ops, res.Results)
		return p.text(txnText(res)...)
	}
	return cmd
}

// txnText is etcdctl's text for a transaction's answer: SUCCESS or FAILURE,
// then each result after an empty line, as put (the revision), del (the
// keys deleted), get (the value, nothing for a missing key) and list (key
// and value lines) print it.
func txnText(res client.TxnResponse) [][]byte {
	lines := [][]byte{[]byte("FAILURE")}
	if res.Succeeded {
		lines[0] = []byte("SUCCESS")
	}
	for _, r := range res.Results {
		lines = append(lines, nil)
		switch {
		case r.Put != nil:
			lines = append(lines, strconv.AppendUint(nil, r.Put.KV.ModRevision, 10))
		case r.Delete != nil:
			lines = append(lines, strconv.AppendInt(nil, int64(r.Delete.Deleted), 10))
		case r.DeletePrefix != nil:
			lines = append(lines, strconv.AppendInt(nil, int64(r.DeletePrefix.Deleted), 10))
		case r.Get != nil && r.Get.KV != nil:
			lines = append(lines, r.Get.KV.Value)
		case r.List != nil:
			for _, kv := range r.List.KVs {
				lines = append(lines, kv.Key, kv.Value)
			}
		}
	}
	return lines
}

// warnTruncatedLists says on w which get --prefix without --limit stopped
// at the API's default page: a transaction reads one page, and text output
// cannot show that more keys remain.
func warnTruncatedLists(w io.Writer, ops []client.TxnOp, results []client.TxnOpResult) {
	for i, r := range results {
		if r.List == nil || !r.List.More || i >= len(ops) || ops[i].List == nil || ops[i].List.Limit != 0 {
			continue
		}
		fmt.Fprintf(w, "raftkv: get --prefix %s printed the first %d keys only; --limit reads up to %d\n",
			ops[i].List.Prefix, len(r.List.KVs), maxPageSize)
	}
}
