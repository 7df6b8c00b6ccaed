//go:build unix

package robustness

import (
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/raftkv/raftkv/internal/proctest"
)

// proc is one raftkv process of a cluster. Its output is appended to a log
// file shared by every start of the same member. Its Kill and Stop mark the
// exit as expected before they signal, so that only other exits count as
// failures.
type proc struct {
	*proctest.Proc
	// expected is set before the harness kills or stops the process, or
	// when it is going to stop by itself (a removed member): only other
	// exits are failures.
	expected atomic.Bool
	paused   atomic.Bool // SIGSTOPped and not yet continued
}

// startProc starts bin with args, its output appended to logPath after a
// line that marks the start (portTaken looks for it). onExit is called, from
// the goroutine that waits for the process, if it exits while nobody
// expected it to.
func startProc(bin, name, logPath string, args []string, onExit func(code int)) (*proc, error) {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(f, "=== %s robustness: raftkv %s\n", time.Now().Format(time.RFC3339Nano), strings.Join(args, " "))
	p := &proc{}
	p.Proc, err = proctest.Start(proctest.Spec{Name: name, Bin: bin, Args: args, Log: f, OnExit: func(code int) {
		if !p.expected.Load() && onExit != nil {
			onExit(code)
		}
	}})
	if err != nil {
		return nil, err
	}
	return p, nil
}

// Kill ends the process with SIGKILL, by its pid, and waits for it.
func (p *proc) Kill() {
	p.expected.Store(true)
	_ = p.Proc.Kill()
	p.paused.Store(false)
}

// sigkill sends SIGKILL without waiting for the process to exit.
func (p *proc) sigkill() {
	p.expected.Store(true)
	_ = p.Signal(syscall.SIGKILL)
}

// pause stops the process with SIGSTOP; resume continues it.
func (p *proc) pause() error {
	if err := p.Signal(syscall.SIGSTOP); err != nil {
		return fmt.Errorf("SIGSTOP %s: %w", p.Name, err)
	}
	p.paused.Store(true)
	return nil
}

func (p *proc) resume() error {
	if err := p.Signal(syscall.SIGCONT); err != nil && !p.Exited() {
		return fmt.Errorf("SIGCONT %s: %w", p.Name, err)
	}
	p.paused.Store(false)
	return nil
}

// Stop ends the process at the end of a history: SIGCONT if it is paused,
// SIGTERM, then SIGKILL if it does not exit within d. It reports whether
// SIGTERM was enough.
func (p *proc) Stop(d time.Duration) bool {
	p.expected.Store(true)
	if p.paused.Load() && !p.Exited() {
		_ = p.resume()
	}
	return p.Proc.Stop(d)
}
