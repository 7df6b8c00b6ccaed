// Package flood plays hostile and careless clients against one raftkv node
// while honest writers keep writing, and reports what the node did: the
// answers each kind of client got, the writers' latencies, and the node's
// peak memory and open files (from /proc). The e2e flood test and
// scripts/flood share it, so the figures in docs/SECURITY.md come from the
// same code that the test asserts on.
package flood

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Config says which clients to play. Counts of zero leave a kind out.
type Config struct {
	// URL is the node's client URL, e.g. http://127.0.0.1:12380.
	URL string
	// Pid, when positive, is the node's process, sampled for VmRSS and open
	// files.
	Pid int
	// Idle connections send one request and then stay open, silent.
	Idle int
	// Silent connections never send anything.
	Silent int
	// SlowBodies send a PUT with a BodyBytes body, all but its last byte,
	// and then stall.
	SlowBodies int
	BodyBytes  int
	// HugeLengths declare a Content-Length of 99999999999 and send no body;
	// half of them ask for 100-continue.
	HugeLengths int
	// Watchers open a watch of every key and never read it.
	Watchers int
	// Writers PUT ValueBytes values to their own key, one after another,
	// for Duration once the other clients are in place.
	Writers    int
	ValueBytes int
	// SourceIP, when set, is the local address of every connection the
	// flood makes (127.0.0.2, say). The thousands of ephemeral ports it
	// takes then belong to that address, so that listeners on 127.0.0.1
	// elsewhere on the machine (other tests rebinding their ports) never
	// find one of them taken.
	SourceIP string
	// WriterAuthorization, when set, is the Authorization header of the
	// writers' requests (a node with access control on); the hostile
	// clients send none.
	WriterAuthorization string
	Duration            time.Duration
	// Settle is how long the hostile clients stay in place, after the
	// writers are done, before their outcome is read (default 0).
	Settle time.Duration
}

// Report is what a flood observed.
type Report struct {
	// BaseRSSKiB and BaseFDs are the node's before the flood, PeakRSSKiB
	// and PeakFDs the highest seen during it.
	BaseRSSKiB, PeakRSSKiB int64
	BaseFDs, PeakFDs       int
	// EndRSSKiB and EndFDs are the node's at the end, with the hostile
	// clients still connected: what it kept of them.
	EndRSSKiB int64
	EndFDs    int
	// Writes counts the writers' answers by status and error code
	// ("204", "503 busy", "error: ..."); Latencies holds those of the
	// successful ones, sorted.
	Writes    map[string]int
	Latencies []time.Duration
	// Hostile counts, per kind of client, how its connections ended:
	// an answer ("413 request_too_large", "503 busy"), "closed" by the
	// node, or "open" at the end.
	Hostile map[string]map[string]int
}

// OK is the number of successful writes.
func (r *Report) OK() int { return len(r.Latencies) }

// Percentile is the p-th quantile (0..1) of the successful writes' latency.
func (r *Report) Percentile(p float64) time.Duration {
	if len(r.Latencies) == 0 {
		return 0
	}
	return r.Latencies[min(len(r.Latencies)-1, int(p*float64(len(r.Latencies))))]
}

func (r *Report) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "node: RSS %d -> peak %d -> end %d MiB; open files %d -> peak %d -> end %d\n",
		r.BaseRSSKiB>>10, r.PeakRSSKiB>>10, r.EndRSSKiB>>10, r.BaseFDs, r.PeakFDs, r.EndFDs)
	fmt.Fprintf(&b, "writes: %v; p50 %v p99 %v max %v\n", r.Writes,
		r.Percentile(0.5).Round(time.Microsecond), r.Percentile(0.99).Round(time.Microsecond), r.Percentile(1).Round(time.Microsecond))
	kinds := make([]string, 0, len(r.Hostile))
	for k := range r.Hostile {
		kinds = append(kinds, k)
	}
	slices.Sort(kinds)
	for _, k := range kinds {
		fmt.Fprintf(&b, "%s: %v\n", k, r.Hostile[k])
	}
	return b.String()
}

// Run plays the flood until the writers are done (and Settle has passed),
// then closes every connection it opened. It returns an error only when it
// cannot run at all (a bad URL).
func Run(ctx context.Context, cfg Config) (*Report, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("flood: bad URL %q", cfg.URL)
	}
	rep := &Report{Writes: map[string]int{}, Hostile: map[string]map[string]int{}}
	rep.BaseRSSKiB, rep.BaseFDs = sample(cfg.Pid)
	rep.PeakRSSKiB, rep.PeakFDs = rep.BaseRSSKiB, rep.BaseFDs

	floodCtx, stopFlood := context.WithCancel(ctx)
	defer stopFlood()
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		placed   sync.WaitGroup
		outcomes = func(kind, what string) {
			mu.Lock()
			defer mu.Unlock()
			if rep.Hostile[kind] == nil {
				rep.Hostile[kind] = map[string]int{}
			}
			rep.Hostile[kind][what]++
		}
	)
	hostile := func(kind string, n int, send func(net.Conn) error) {
		for range n {
			wg.Add(1)
			placed.Add(1)
			go func() {
				defer wg.Done()
				outcomes(kind, hold(floodCtx, u.Host, cfg.SourceIP, send, placed.Done))
			}()
		}
	}
	hostile("idle", cfg.Idle, func(c net.Conn) error {
		if _, err := io.WriteString(c, "GET /livez HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			return err
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.Body.Close()
	})
	hostile("silent", cfg.Silent, func(net.Conn) error { return nil })
	hostile("slow-body", cfg.SlowBodies, func(c net.Conn) error {
		head := fmt.Sprintf("PUT /v1/kv/flood/slow HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", cfg.BodyBytes)
		if _, err := io.WriteString(c, head); err != nil {
			return err
		}
		_, err := c.Write(bytes.Repeat([]byte{'s'}, max(cfg.BodyBytes-1, 0)))
		return err
	})
	for i := range cfg.HugeLengths {
		expect := ""
		if i%2 == 1 {
			expect = "Expect: 100-continue\r\n"
		}
		hostile("huge-length", 1, func(c net.Conn) error {
			_, err := io.WriteString(c, "PUT /v1/kv/flood/huge HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999\r\n"+expect+"\r\n")
			return err
		})
	}
	hostile("watcher", cfg.Watchers, func(c net.Conn) error {
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetReadBuffer(4096) // a reader that never reads, cheaply
		}
		_, err := io.WriteString(c, "GET /v1/watch/?prefix=true HTTP/1.1\r\nHost: x\r\n\r\n")
		return err
	})

	sampleCtx, stopSampling := context.WithCancel(ctx)
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			rss, fds := sample(cfg.Pid)
			mu.Lock()
			rep.PeakRSSKiB, rep.PeakFDs = max(rep.PeakRSSKiB, rss), max(rep.PeakFDs, fds)
			mu.Unlock()
			select {
			case <-sampleCtx.Done():
				return
			case <-tick.C:
			}
		}
	}()

	placed.Wait()
	write(ctx, cfg, rep, &mu)
	if cfg.Settle > 0 {
		t := time.NewTimer(cfg.Settle)
		select {
		case <-t.C:
		case <-ctx.Done():
		}
		t.Stop()
	}
	stopSampling()
	<-sampled
	rep.EndRSSKiB, rep.EndFDs = sample(cfg.Pid)
	stopFlood()
	wg.Wait()
	slices.Sort(rep.Latencies)
	return rep, nil
}

// hold dials addr, runs send, reports the connection as placed, and then
// reads until the node answers or closes, or ctx ends. It returns what
// happened.
func hold(ctx context.Context, addr, sourceIP string, send func(net.Conn) error, placed func()) string {
	d := dialer(sourceIP)
	dialCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	c, err := d.DialContext(dialCtx, "tcp", addr)
	cancel()
	if err != nil {
		placed()
		return "dial error"
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	// A node that cannot accept leaves the connection in its backlog;
	// that is an outcome too, not a reason to wait forever.
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	err = send(c)
	_ = c.SetDeadline(time.Time{})
	placed()
	if err != nil {
		if ctx.Err() != nil {
			return "open"
		}
		return "closed"
	}
	return readOutcome(ctx, c)
}

// readOutcome reads what the node sends next: a status line (and the error
// code of a JSON body), or the end of the connection.
func readOutcome(ctx context.Context, c net.Conn) string {
	br := bufio.NewReader(c)
	for {
		resp, err := http.ReadResponse(br, nil)
		switch {
		case ctx.Err() != nil:
			return "open"
		case err != nil:
			return "closed"
		case resp.StatusCode == http.StatusContinue:
			return "100 continue"
		case resp.StatusCode == http.StatusOK && resp.Header.Get("Content-Type") == "text/event-stream":
			// A watch that started: the watcher never reads it, so
			// wait for the node to give up on it or for the end.
			<-ctx.Done()
			return "streaming until the end"
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		out := strconv.Itoa(resp.StatusCode)
		if i := bytes.Index(body, []byte(`"code":"`)); i >= 0 {
			rest := body[i+len(`"code":"`):]
			if j := bytes.IndexByte(rest, '"'); j >= 0 {
				out += " " + string(rest[:j])
			}
		}
		return out
	}
}

// write runs the writers for cfg.Duration.
func write(ctx context.Context, cfg Config, rep *Report, mu *sync.Mutex) {
	if cfg.Writers == 0 {
		return
	}
	tr := &http.Transport{MaxIdleConnsPerHost: cfg.Writers, DialContext: dialer(cfg.SourceIP).DialContext}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	value := bytes.Repeat([]byte{'v'}, cfg.ValueBytes)
	ctx, cancel := context.WithTimeout(ctx, cfg.Duration)
	defer cancel()
	var wg sync.WaitGroup
	for i := range cfg.Writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			target := strings.TrimSuffix(cfg.URL, "/") + "/v1/kv/flood/writer-" + strconv.Itoa(i)
			for ctx.Err() == nil {
				what, took := put(hc, target, cfg.WriterAuthorization, value)
				mu.Lock()
				rep.Writes[what]++
				if what == "200" {
					rep.Latencies = append(rep.Latencies, took)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
}

func put(hc *http.Client, target, authorization string, value []byte) (string, time.Duration) {
	req, err := http.NewRequest(http.MethodPut, target, bytes.NewReader(value))
	if err != nil {
		return "error: " + err.Error(), 0
	}
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	start := time.Now()
	resp, err := hc.Do(req)
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return "error: timeout", 0
		}
		return "error: connection", 0
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	took := time.Since(start)
	out := strconv.Itoa(resp.StatusCode)
	if resp.StatusCode != http.StatusOK {
		if i := bytes.Index(body, []byte(`"code":"`)); i >= 0 {
			rest := body[i+len(`"code":"`):]
			if j := bytes.IndexByte(rest, '"'); j >= 0 {
				out += " " + string(rest[:j])
			}
		}
	}
	return out, took
}

// sample reads a process's resident memory (KiB) and open files; zeros when
// pid is not positive or the process is gone.
func sample(pid int) (rssKiB int64, fds int) {
	if pid <= 0 {
		return 0, 0
	}
	status, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err == nil {
		for line := range strings.Lines(string(status)) {
			if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
				rssKiB, _ = strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			}
		}
	}
	entries, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/fd")
	if err == nil {
		fds = len(entries)
	}
	return rssKiB, fds
}

// dialer dials from sourceIP, or from the address the system picks when it
// is "".
func dialer(sourceIP string) *net.Dialer {
	d := &net.Dialer{}
	if sourceIP != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(sourceIP)}
	}
	return d
}
