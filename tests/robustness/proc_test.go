//go:build unix

package robustness

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// proc is one raftkv process. Its output is appended to a log file shared by
// every start of the same member.
type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited
	// expected is set before the harness kills or stops the process, or
	// when it is going to stop by itself (a removed member): only other
	// exits are failures.
	expected atomic.Bool
	paused   atomic.Bool // SIGSTOPped and not yet continued
}

// startProc starts bin with args, its output appended to logPath. onExit is
// called, from the goroutine that waits for the process, if it exits while
// nobody expected it to.
func startProc(bin, name, logPath string, args []string, onExit func(p *proc, code int)) (*proc, error) {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(f, "=== %s robustness: raftkv %s\n", time.Now().Format(time.RFC3339Nano), strings.Join(args, " "))
	cmd := exec.Command(bin, args...)
	cmd.Env = cleanEnv()
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait() // the exit status is read from cmd.ProcessState
		f.Close()
		if !p.expected.Load() && onExit != nil {
			onExit(p, cmd.ProcessState.ExitCode())
		}
		close(p.done)
	}()
	return p, nil
}

// cleanEnv is the test's environment without RAFTKV_ settings, so that a
// developer's shell cannot change what the tests start. A race-enabled
// binary sleeps a second at exit by default so that late races get reported;
// a shorter pause keeps kill-and-restart cycles quick.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "RAFTKV_") {
			env = append(env, kv)
		}
	}
	if _, ok := os.LookupEnv("GORACE"); !ok {
		env = append(env, "GORACE=atexit_sleep_ms=100")
	}
	return env
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// waitExit waits up to d for the process to exit and reports whether it did.
func (p *proc) waitExit(d time.Duration) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-p.done:
		return true
	case <-timer.C:
		return false
	}
}

// exitCode is the exit status, or -1 if a signal ended the process. Call it
// only after the process has exited.
func (p *proc) exitCode() int {
	<-p.done
	return p.cmd.ProcessState.ExitCode()
}

// kill ends the process with SIGKILL, by its pid, and waits for it.
func (p *proc) kill() {
	p.sigkill()
	<-p.done
	p.paused.Store(false)
}

// sigkill sends SIGKILL without waiting for the process to exit.
func (p *proc) sigkill() {
	p.expected.Store(true)
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
}

// pause stops the process with SIGSTOP; resume continues it.
func (p *proc) pause() error {
	if err := p.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		return fmt.Errorf("SIGSTOP %s: %w", p.name, err)
	}
	p.paused.Store(true)
	return nil
}

func (p *proc) resume() error {
	if err := p.cmd.Process.Signal(syscall.SIGCONT); err != nil && !p.exited() {
		return fmt.Errorf("SIGCONT %s: %w", p.name, err)
	}
	p.paused.Store(false)
	return nil
}

// stop ends the process at the end of a history: SIGCONT if it is paused,
// SIGTERM, then SIGKILL if it does not exit within d. It reports whether
// SIGTERM was enough.
func (p *proc) stop(d time.Duration) bool {
	p.expected.Store(true)
	if p.exited() {
		return true
	}
	if p.paused.Load() {
		_ = p.resume()
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	if p.waitExit(d) {
		return true
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
	return false
}
