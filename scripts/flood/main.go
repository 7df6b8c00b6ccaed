// Command flood plays hostile clients against one raftkv node while writers
// write, and prints the node's memory, open files and write latency (see
// internal/flood). Usage, against a node started separately:
//
//	go run ./scripts/flood -url http://127.0.0.1:12380 -pid $(pgrep -n raftkv) -idle 5000 -watchers 1000
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"

	"github.com/raftkv/raftkv/internal/flood"
)

func main() {
	var cfg flood.Config
	flag.StringVar(&cfg.URL, "url", "http://127.0.0.1:12380", "the node's client URL")
	flag.IntVar(&cfg.Pid, "pid", 0, "the node's process id, to sample its RSS and open files")
	flag.IntVar(&cfg.Idle, "idle", 2000, "connections that send one request, then stay idle")
	flag.IntVar(&cfg.Silent, "silent", 2000, "connections that never send a byte")
	flag.IntVar(&cfg.SlowBodies, "slow-bodies", 400, "PUTs that send all but the last byte of their body")
	flag.IntVar(&cfg.BodyBytes, "body-bytes", 1<<20+1<<19, "size of a slow body")
	flag.IntVar(&cfg.HugeLengths, "huge-lengths", 100, "PUTs declaring Content-Length 99999999999 without a body")
	flag.IntVar(&cfg.Watchers, "watchers", 2000, "watchers of every key that never read")
	flag.IntVar(&cfg.Writers, "writers", 16, "concurrent writers")
	flag.IntVar(&cfg.ValueBytes, "value-bytes", 1<<16, "size of a written value")
	flag.StringVar(&cfg.SourceIP, "source-ip", "", "local address of every connection (e.g. 127.0.0.2), so the flood's ephemeral ports do not take 127.0.0.1's")
	flag.StringVar(&cfg.WriterAuthorization, "writer-auth", "", "Authorization header of the writers' requests, for a node with access control on (the hostile clients send none)")
	flag.DurationVar(&cfg.Duration, "duration", 0, "how long the writers write (default 20s)")
	flag.DurationVar(&cfg.Settle, "settle", 0, "how long the flood stays after the writers stop")
	flag.Parse()
	if cfg.Duration == 0 {
		cfg.Duration = 20e9
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	rep, err := flood.Run(ctx, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Print(rep)
}
