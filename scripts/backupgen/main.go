// Command backupgen writes a synthetic backup of -keys keys with values of
// -value-bytes, in raftkv's backup format, to measure restore and backup at a
// size no test reaches (docs/BACKUP.md, "What it costs"). Key i is
// bench-<i, zero-padded>, written once at revision i+1. Usage:
//
//	go run ./scripts/backupgen -keys 1000000 -value-bytes 100 -o 1m.backup
package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/raftkv/raftkv/backup"
	"github.com/raftkv/raftkv/kvstore"
)

// synthetic is a backup.Source of n generated keys.
type synthetic struct {
	n     int
	value []byte
}

func (s synthetic) Revision() uint64        { return uint64(s.n) }
func (s synthetic) Len() int                { return s.n }
func (s synthetic) Leases() []kvstore.Lease { return nil }
func (s synthetic) Ascend(fn func(kvstore.KeyValue) bool) {
	key := make([]byte, 0, 32)
	for i := range s.n {
		key = fmt.Appendf(key[:0], "bench-%09d", i)
		rev := uint64(i + 1)
		if !fn(kvstore.KeyValue{Key: key, Item: kvstore.Item{Value: s.value, CreateRevision: rev, ModRevision: rev, Version: 1}}) {
			return
		}
	}
}

func main() {
	keys := flag.Int("keys", 1000000, "number of keys")
	valueBytes := flag.Int("value-bytes", 100, "bytes per value")
	out := flag.String("o", "synthetic.backup", "output file")
	flag.Parse()
	if err := run(*keys, *valueBytes, *out); err != nil {
		fmt.Fprintln(os.Stderr, "backupgen:", err)
		os.Exit(1)
	}
}

func run(keys, valueBytes int, path string) error {
	value := make([]byte, valueBytes)
	for i := range value {
		value[i] = 'a' + byte(i%26)
	}
	enc, err := backup.NewEncoder(backup.Header{ClusterID: "synthetic", CreatedAt: time.Now().UTC()}, synthetic{n: keys, value: value})
	if err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	n, err := enc.WriteTo(w)
	if err == nil {
		err = w.Flush()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	fmt.Printf("wrote %s: %d keys, %d bytes\n", path, keys, n)
	return nil
}
