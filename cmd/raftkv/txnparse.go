package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/raftkv/raftkv/client"
	"github.com/raftkv/raftkv/wire"
)

// The three sections of etcdctl's txn input, in order, each ended by an
// empty line.
const (
	sectionCompares = iota
	sectionSuccess
	sectionFailure
	sections
)

// txnPrompt is etcdctl's interactive prompt for a section.
func txnPrompt(section int) string {
	switch section {
	case sectionCompares:
		return "compares:"
	case sectionSuccess:
		return "success requests (get, put, del):"
	default:
		return "failure requests (get, put, del):"
	}
}

// txnLineError is a usage error (exit 2) that names the input line.
func txnLineError(n int, text string, err error) error {
	return usagef("line %d (%s): %w", n, text, err)
}

// parseTxn reads a transaction in etcdctl's txn format: compares one per
// line, an empty line, the success requests, an empty line, the failure
// requests. Input may end early (at EOF) in any section. With a prompt
// (interactive input from a terminal) it asks for each section and stops
// after the failure requests' empty line; otherwise it reads to the end and
// refuses anything but empty lines after that line, rather than ignore it.
func parseTxn(r io.Reader, prompt func(string)) (client.TxnRequest, error) {
	var req client.TxnRequest
	br := bufio.NewReader(r)
	section, n := sectionCompares, 0
	if prompt != nil {
		prompt(txnPrompt(section))
	}
	for {
		line, err := br.ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return req, fmt.Errorf("read the transaction from standard input: %w", err)
		}
		if line == "" && err != nil {
			break
		}
		n++
		text := strings.TrimSpace(line)
		switch {
		case text == "":
			if section < sections {
				section++
				if section < sections && prompt != nil {
					prompt(txnPrompt(section))
				}
			}
		case section == sectionCompares:
			c, perr := parseCompare(text)
			if perr != nil {
				return req, txnLineError(n, text, perr)
			}
			req.Compare = append(req.Compare, c)
		case section == sectionSuccess || section == sectionFailure:
			op, perr := parseTxnOp(text)
			if perr != nil {
				return req, txnLineError(n, text, perr)
			}
			if section == sectionSuccess {
				req.Success = append(req.Success, op)
			} else {
				req.Failure = append(req.Failure, op)
			}
		default:
			return req, txnLineError(n, text, errors.New("text after the failure requests: a transaction has three sections, compares, success requests and failure requests"))
		}
		if err != nil || (section == sections && prompt != nil) {
			break
		}
	}
	if len(req.Compare) == 0 && len(req.Success) == 0 && len(req.Failure) == 0 {
		return req, usagef("no transaction on standard input: want compares, an empty line, success requests, an empty line, failure requests")
	}
	return req, nil
}

// parseCompare reads one of etcdctl's compares: TARGET("KEY") OP "OPERAND",
// with TARGET value (val), version (ver), create (c) or mod (m), OP =, !=,
// < or >, and KEY and OPERAND Go-quoted strings, as etcdctl reads them.
func parseCompare(line string) (client.TxnCompare, error) {
	var c client.TxnCompare
	name, rest, ok := strings.Cut(line, "(")
	if !ok {
		return c, errors.New(`malformed compare, want TARGET("KEY") OP "VALUE"`)
	}
	name = strings.TrimSpace(name)
	switch name {
	case "value", "val":
		c.Target = wire.TargetValue
	case "version", "ver":
		c.Target = wire.TargetVersion
	case "create", "c":
		c.Target = wire.TargetCreateRevision
	case "mod", "m":
		c.Target = wire.TargetModRevision
	case "lease":
		c.Target = wire.TargetLease
	default:
		return c, fmt.Errorf("unknown compare target %q: want value, version, create, mod or lease", name)
	}
	key, rest, err := quotedPrefix(strings.TrimLeft(rest, " \t"))
	if err != nil {
		return c, fmt.Errorf("%s(KEY): %w", name, err)
	}
	if key == "" {
		return c, errors.New("empty key")
	}
	rest, ok = strings.CutPrefix(strings.TrimLeft(rest, " \t"), ")")
	if !ok {
		return c, fmt.Errorf(`malformed compare: want ) after %s(%q`, name, key)
	}
	rest = strings.TrimLeft(rest, " \t")
	opLen := len(rest) - len(strings.TrimLeft(rest, "=!<>"))
	c.Op = rest[:opLen]
	switch c.Op {
	case "=", "!=", "<", ">":
	case "":
		return c, fmt.Errorf("want an operator (=, !=, < or >) after %s(%q)", name, key)
	default:
		return c, fmt.Errorf("unknown operator %q: want =, !=, < or >", c.Op)
	}
	operand, rest, err := quotedPrefix(strings.TrimLeft(rest[opLen:], " \t"))
	if err != nil {
		return c, fmt.Errorf("operand: %w", err)
	}
	if strings.TrimSpace(rest) != "" {
		return c, fmt.Errorf("unexpected %q after the operand", strings.TrimSpace(rest))
	}
	c.Key = []byte(key)
	if c.Target == wire.TargetValue {
		c.Value = []byte(operand) // "" is an empty value, not none
		return c, nil
	}
	v, err := strconv.ParseUint(operand, 10, 64)
	if err != nil {
		return c, fmt.Errorf("%s compares a number, not %q", name, operand)
	}
	switch c.Target {
	case wire.TargetVersion:
		c.Version = &v
	case wire.TargetCreateRevision:
		c.CreateRevision = &v
	case wire.TargetLease:
		c.Lease = &v
	default:
		c.ModRevision = &v
	}
	return c, nil
}

// quotedPrefix unquotes the Go string literal ("..." or `...`) s starts
// with and returns the rest of s.
func quotedPrefix(s string) (string, string, error) {
	if s == "" || (s[0] != '"' && s[0] != '`') {
		return "", "", errors.New(`want a quoted string, such as "k"`)
	}
	q, err := strconv.QuotedPrefix(s)
	if err != nil {
		return "", "", errors.New("unterminated or malformed quoted string")
	}
	u, err := strconv.Unquote(q)
	if err != nil {
		return "", "", errors.New("malformed quoted string")
	}
	return u, s[len(q):], nil
}

// txnToken is a word of a request line; a quoted word is never a flag.
type txnToken struct {
	text   string
	quoted bool
}

// splitTxnLine splits a request line into words as etcdctl does: words are
// separated by white space; "..." is a Go string literal (escapes such as
// \" and \n, and bytes as \xff), '...' is taken as it is. A closing quote
// must end the word.
func splitTxnLine(line string) ([]txnToken, error) {
	var toks []txnToken
	for i := 0; ; {
		for i < len(line) && (line[i] == ' ' || line[i] == '\t') {
			i++
		}
		if i == len(line) {
			return toks, nil
		}
		var tok txnToken
		switch line[i] {
		case '"':
			q, err := strconv.QuotedPrefix(line[i:])
			if err != nil {
				return nil, errors.New("unterminated or malformed double-quoted string")
			}
			tok.text, _ = strconv.Unquote(q) // QuotedPrefix checked it
			tok.quoted = true
			i += len(q)
		case '\'':
			end := strings.IndexByte(line[i+1:], '\'')
			if end < 0 {
				return nil, errors.New("unterminated single-quoted string")
			}
			tok.text, tok.quoted = line[i+1:i+1+end], true
			i += end + 2
		default:
			end := strings.IndexAny(line[i:], " \t")
			if end < 0 {
				end = len(line) - i
			}
			tok.text = line[i : i+end]
			i += end
		}
		if tok.quoted && i < len(line) && line[i] != ' ' && line[i] != '\t' {
			return nil, errors.New("a closing quote must end the word")
		}
		toks = append(toks, tok)
	}
}

// txnRequestFlags are the flags of a request line.
type txnRequestFlags struct {
	prefix   bool
	limit    int
	limitSet bool
	lease    uint64
}

// parseTxnOp reads one of etcdctl's requests: put KEY VALUE, del KEY,
// del --prefix PREFIX, get KEY, get --prefix PREFIX [--limit N]. Flags may
// come anywhere after the command; -- ends them.
func parseTxnOp(line string) (client.TxnOp, error) {
	toks, err := splitTxnLine(line)
	if err != nil {
		return client.TxnOp{}, err
	}
	name := toks[0].text
	var args []string
	var fl txnRequestFlags
	for i := 1; i < len(toks); i++ {
		t := toks[i]
		if t.quoted || !strings.HasPrefix(t.text, "--") {
			args = append(args, t.text)
			continue
		}
		if t.text == "--" {
			for _, t := range toks[i+1:] {
				args = append(args, t.text)
			}
			break
		}
		flag, value, hasValue := strings.Cut(t.text, "=")
		switch {
		case flag == "--prefix" && !hasValue && (name == "get" || name == "del"):
			fl.prefix = true
		case flag == "--lease" && name == "put":
			if !hasValue {
				if i+1 == len(toks) {
					return client.TxnOp{}, errors.New("--lease needs a lease id")
				}
				i++
				value = toks[i].text
			}
			id, err := strconv.ParseUint(value, 10, 64)
			if err != nil || id == 0 {
				return client.TxnOp{}, fmt.Errorf("--lease %q: want a lease id", value)
			}
			fl.lease = id
		case flag == "--limit" && name == "get":
			if !hasValue {
				if i+1 == len(toks) {
					return client.TxnOp{}, errors.New("--limit needs a number")
				}
				i++
				value = toks[i].text
			}
			n, err := strconv.Atoi(value)
			if err != nil || n < 1 || n > maxPageSize {
				return client.TxnOp{}, fmt.Errorf("--limit %q: want 1 to %d", value, maxPageSize)
			}
			fl.limit, fl.limitSet = n, true
		default:
			return client.TxnOp{}, fmt.Errorf("%s: unknown flag %s (%s)", name, flag, txnFlagsOf(name))
		}
	}
	return txnOp(name, args, fl)
}

// txnFlagsOf says which flags a request takes.
func txnFlagsOf(name string) string {
	switch name {
	case "get":
		return "get takes --prefix and --limit N"
	case "del":
		return "del takes --prefix"
	case "put":
		return "put takes --lease ID"
	default:
		return name + " takes no flags"
	}
}

// txnOp builds the operation of a request line from its words.
func txnOp(name string, args []string, fl txnRequestFlags) (client.TxnOp, error) {
	switch name {
	case "put":
		if len(args) != 2 {
			return client.TxnOp{}, fmt.Errorf("put takes KEY VALUE; got %d argument(s)", len(args))
		}
		if args[0] == "" {
			return client.TxnOp{}, errors.New("empty key")
		}
		return client.TxnOp{Put: &client.TxnPut{Key: []byte(args[0]), Value: []byte(args[1]), Lease: fl.lease}}, nil
	case "get", "del":
	default:
		return client.TxnOp{}, fmt.Errorf("unknown request %q: want get, put or del", name)
	}
	what := "KEY"
	if fl.prefix {
		what = "PREFIX"
	}
	if len(args) != 1 {
		// etcdctl's second argument is a range end, which raftkv has not.
		return client.TxnOp{}, fmt.Errorf("%s takes %s; got %d argument(s)", name, what, len(args))
	}
	if fl.limitSet && !fl.prefix {
		return client.TxnOp{}, errors.New("--limit needs --prefix")
	}
	key := []byte(args[0])
	switch {
	case fl.prefix && name == "get":
		return client.TxnOp{List: &client.TxnRange{Prefix: key, Limit: fl.limit}}, nil
	case fl.prefix:
		return client.TxnOp{DeletePrefix: &client.TxnRange{Prefix: key}}, nil
	case len(key) == 0:
		return client.TxnOp{}, errors.New(`empty key (--prefix "" means every key)`)
	case name == "get":
		return client.TxnOp{Get: &client.TxnKey{Key: key}}, nil
	default:
		return client.TxnOp{Delete: &client.TxnKey{Key: key}}, nil
	}
}
