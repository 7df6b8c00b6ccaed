//go:build unix

package e2e

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Deadlines. They are generous because CI runs race-instrumented servers on
// two cores; every wait returns as soon as its condition holds.
const (
	startTimeout  = 15 * time.Second // a process answers HTTP
	leaderTimeout = 20 * time.Second // a cluster elects a leader and commits
	exitTimeout   = 15 * time.Second // a process that should exit does
	stopTimeout   = 5 * time.Second  // SIGTERM to exit: "promptly"
	pollInterval  = 50 * time.Millisecond
)

// proc is one raftkv process. Its stdout and stderr go to a log file in the
// test's temporary directory, printed if the test fails.
type proc struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	logFile *os.File
	done    chan struct{} // closed when the process has exited
}

// startProc starts raftkv with args in the working directory dir, with env
// added to an environment cleared of RAFTKV_ variables. The process is
// stopped when the test ends.
func startProc(t *testing.T, name, dir string, env []string, args ...string) *proc {
	t.Helper()
	f, err := os.CreateTemp(t.TempDir(), name+"-*.log")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(raftkvBin, args...)
	cmd.Dir = dir
	cmd.Env = append(cleanEnv(), env...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		t.Fatalf("start %s: %v", name, err)
	}
	p := &proc{name: name, cmd: cmd, logPath: f.Name(), logFile: f, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait() // the exit status is read from cmd.ProcessState
		close(p.done)
	}()
	t.Cleanup(func() {
		p.stop(t)
		p.logFile.Close()
		out := p.log()
		if strings.Contains(out, "WARNING: DATA RACE") {
			t.Errorf("%s reported a data race", p.name)
		}
		if t.Failed() {
			t.Logf("--- %s (%s) output:\n%s", p.name, strings.Join(p.cmd.Args[1:], " "), out)
		}
	})
	return p
}

// cleanEnv is the test's environment without RAFTKV_ settings, so that a
// developer's shell cannot change what the tests start. A race-enabled
// binary sleeps a second at exit by default so that late races get reported;
// a shorter pause keeps "exits promptly" measurable and the suite fast.
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

// log returns everything the process has written so far.
func (p *proc) log() string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return "(reading log: " + err.Error() + ")"
	}
	return string(b)
}

// lastLine returns the last non-empty line of the process's output.
func (p *proc) lastLine() string {
	lines := strings.Split(strings.TrimRight(p.log(), "\n"), "\n")
	return lines[len(lines)-1]
}

// kill ends the process with SIGKILL and waits for it.
func (p *proc) kill(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil && !p.exited() {
		t.Fatalf("kill %s: %v", p.name, err)
	}
	<-p.done
}

// terminate sends SIGTERM and reports how long the process took to exit, or
// fails the test if it did not exit within stopTimeout.
func (p *proc) terminate(t *testing.T) time.Duration {
	t.Helper()
	start := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM %s: %v", p.name, err)
	}
	if !p.waitExit(stopTimeout) {
		t.Fatalf("%s did not exit within %v of SIGTERM", p.name, stopTimeout)
	}
	return time.Since(start)
}

// stop ends the process at the end of a test: SIGTERM, then SIGKILL if it
// does not exit in time. A process that ignores SIGTERM fails the test.
func (p *proc) stop(t *testing.T) {
	if p.exited() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	if p.waitExit(exitTimeout) {
		return
	}
	t.Errorf("%s did not exit within %v of SIGTERM; killing it", p.name, exitTimeout)
	_ = p.cmd.Process.Kill()
	<-p.done
}

// result is what a short-lived raftkv command did.
type result struct {
	stdout, stderr string
	code           int
}

// runRaftkv runs raftkv to completion in dir and returns its output. A
// command that is still running after exitTimeout fails the test.
func runRaftkv(t *testing.T, dir string, env []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), exitTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, raftkvBin, args...)
	cmd.Dir = dir
	cmd.Env = append(cleanEnv(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("raftkv %s still running after %v; output:\n%s%s", strings.Join(args, " "), exitTimeout, stdout.String(), stderr.String())
	}
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		t.Fatalf("run raftkv: %v", err)
	}
	return result{stdout: stdout.String(), stderr: stderr.String(), code: cmd.ProcessState.ExitCode()}
}

// freePorts returns n distinct ports that were free a moment ago. Another
// process may take one before raftkv binds it; cluster starts retry then.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	ports := make([]int, n)
	lns := make([]net.Listener, n)
	for i := range lns {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns[i] = ln
		ports[i] = ln.Addr().(*net.TCPAddr).Port
	}
	for _, ln := range lns {
		ln.Close()
	}
	return ports
}

// eventually polls cond until it returns nil or d passes, and then returns
// cond's last error.
func eventually(d time.Duration, cond func() error) error {
	deadline := time.Now().Add(d)
	for {
		err := cond()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(pollInterval)
	}
}
