package main

import (
	"fmt"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"github.com/raftkv/raftkv/httpapi"
	"github.com/raftkv/raftkv/server"
)

// fileReserve is the part of the open file limit kept from client
// connections: WAL and snapshot files, the data dir's lock, peer connections
// (rafthttp holds a few per peer, both ways) and the odd log or metrics file.
const fileReserve = 256

// clientLimits are the serve flags that protect the node from its clients
// (docs/SECURITY.md, "Limits on clients"). Zero caps are derived from the
// open file limit.
type clientLimits struct {
	maxConnections        int
	maxConcurrentRequests int
	maxWatchers           int
	watchHistoryBytes     int64
	idleTimeout           time.Duration
	bodyTimeout           time.Duration
	writeTimeout          time.Duration
}

func (l *clientLimits) addFlags(fl *pflag.FlagSet) {
	fl.IntVar(&l.maxConnections, "max-connections", 0, fmt.Sprintf("open client connections at most; at the cap the longest-idle one is closed (default %d, or the open file limit less %d if that is lower)", server.DefaultMaxConnections, fileReserve))
	fl.IntVar(&l.maxConcurrentRequests, "max-concurrent-requests", httpapi.DefaultMaxConcurrentRequests, "requests in progress at once, watches apart; beyond it 503 busy")
	fl.IntVar(&l.maxWatchers, "max-watchers", 0, fmt.Sprintf("watch streams open at once; beyond it 503 busy (default %d, or a quarter of --max-connections if that is lower)", httpapi.DefaultMaxWatchers))
	fl.Int64Var(&l.watchHistoryBytes, "watch-history-bytes", 0, "bytes of keys and values kept in the watch history, beside --watch-history (default 64 MiB)")
	fl.DurationVar(&l.idleTimeout, "idle-timeout", server.DefaultIdleTimeout, "close a kept-alive client connection idle this long")
	fl.DurationVar(&l.bodyTimeout, "body-timeout", httpapi.DefaultBodyTimeout, "how long a request body may take to arrive before 408")
	fl.DurationVar(&l.writeTimeout, "write-timeout", httpapi.DefaultWriteTimeout, "how long a client may take to accept each write of a watch stream, or an answer once it is ready")
}

// check derives the zero caps from the open file limit nofile and refuses
// caps that the limit cannot hold.
func (l *clientLimits) check(nofile uint64) error {
	switch {
	case l.maxConnections < 0:
		return fmt.Errorf("--max-connections %d must be positive", l.maxConnections)
	case l.maxConcurrentRequests <= 0:
		return fmt.Errorf("--max-concurrent-requests %d must be positive", l.maxConcurrentRequests)
	case l.maxWatchers < 0:
		return fmt.Errorf("--max-watchers %d must be positive", l.maxWatchers)
	case l.watchHistoryBytes < 0:
		return fmt.Errorf("--watch-history-bytes %d must be positive", l.watchHistoryBytes)
	case l.idleTimeout <= 0 || l.bodyTimeout <= 0 || l.writeTimeout <= 0:
		return fmt.Errorf("--idle-timeout %v, --body-timeout %v and --write-timeout %v must be positive", l.idleTimeout, l.bodyTimeout, l.writeTimeout)
	}
	if nofile < 2*fileReserve {
		return fmt.Errorf("the open file limit is %d; raftkv needs at least %d (%d for its files and peers, the rest for clients): raise it with ulimit -n", nofile, 2*fileReserve, fileReserve)
	}
	room := int(min(nofile-fileReserve, 1<<30))
	if l.maxConnections == 0 {
		l.maxConnections = min(server.DefaultMaxConnections, room)
	}
	if l.maxConnections > room {
		return fmt.Errorf("--max-connections %d does not fit the open file limit %d, which must also hold %d files for the WAL, snapshots and peers: lower it to %d or raise the limit (ulimit -n)", l.maxConnections, nofile, fileReserve, room)
	}
	if l.maxWatchers == 0 {
		l.maxWatchers = max(1, min(httpapi.DefaultMaxWatchers, l.maxConnections/4))
	}
	if l.maxWatchers >= l.maxConnections {
		return fmt.Errorf("--max-watchers %d must be below --max-connections %d: requests need connections too", l.maxWatchers, l.maxConnections)
	}
	return nil
}

// raiseFileLimit raises the soft limit on open files to the hard one, as
// far as the process may, and returns the soft limit in force. (The Go
// runtime does the same at start on Linux; this makes it explicit and
// portable, and reads the result.)
func raiseFileLimit() (uint64, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, fmt.Errorf("read the open file limit: %w", err)
	}
	if lim.Cur < lim.Max {
		raised := lim
		raised.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &raised); err == nil {
			lim = raised
		}
	}
	return lim.Cur, nil
}
