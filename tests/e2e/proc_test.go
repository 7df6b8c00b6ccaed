//go:build unix

package e2e

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/raftkv/raftkv/internal/proctest"
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

// proc is a raftkv process that a test started. Its stdout and stderr go to
// a log file in the test's temporary directory, printed if the test fails;
// it is stopped when the test ends. Its Kill, Terminate and Stop fail the
// test when the process does not go as told.
type proc struct{ *proctest.Proc }

// startProc starts raftkv with args in the working directory dir, with env
// added to an environment cleared of RAFTKV_ variables. The process is
// stopped when the test ends.
func startProc(t *testing.T, name, dir string, env []string, args ...string) *proc {
	t.Helper()
	return startProcBin(t, server.Path(t), name, dir, env, args...)
}

// startProcBin is startProc with another program, such as prlimit, that
// runs raftkv in its own process.
func startProcBin(t *testing.T, bin, name, dir string, env []string, args ...string) *proc {
	t.Helper()
	f, err := os.CreateTemp(t.TempDir(), name+"-*.log")
	if err != nil {
		t.Fatal(err)
	}
	pp, err := proctest.Start(proctest.Spec{Name: name, Bin: bin, Args: args, Dir: dir, Env: env, Log: f})
	if err != nil {
		t.Fatal(err)
	}
	p := &proc{pp}
	t.Cleanup(func() {
		p.Stop(t)
		out := p.Log()
		if proctest.ReportsDataRace(out) {
			t.Errorf("%s reported a data race", p.Name)
		}
		if t.Failed() {
			t.Logf("--- %s (%s) output:\n%s", p.Name, strings.Join(args, " "), out)
		}
	})
	return p
}

// Kill ends the process with SIGKILL and waits for it.
func (p *proc) Kill(t *testing.T) {
	t.Helper()
	if err := p.Proc.Kill(); err != nil {
		t.Fatal(err)
	}
}

// Terminate sends SIGTERM and reports how long the process took to exit, or
// fails the test if it did not exit within stopTimeout.
func (p *proc) Terminate(t *testing.T) time.Duration {
	t.Helper()
	start := time.Now()
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM %s: %v", p.Name, err)
	}
	if !p.WaitExit(stopTimeout) {
		t.Fatalf("%s did not exit within %v of SIGTERM", p.Name, stopTimeout)
	}
	return time.Since(start)
}

// Stop ends the process at the end of a test: SIGTERM, then SIGKILL if it
// does not exit in time. A process that ignores SIGTERM fails the test.
func (p *proc) Stop(t *testing.T) {
	if !p.Proc.Stop(exitTimeout) {
		t.Errorf("%s did not exit within %v of SIGTERM; killed it", p.Name, exitTimeout)
	}
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
	return runRaftkvWith(t, dir, env, "", args...)
}

// runRaftkvStdin is runRaftkv with stdin as the command's standard input.
func runRaftkvStdin(t *testing.T, dir, stdin string, args ...string) result {
	t.Helper()
	return runRaftkvWith(t, dir, nil, stdin, args...)
}

func runRaftkvWith(t *testing.T, dir string, env []string, stdin string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), exitTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, server.Path(t), args...)
	cmd.Dir = dir
	cmd.Env = append(proctest.CleanEnv(), env...)
	cmd.Stdin = strings.NewReader(stdin)
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
	ports, err := proctest.FreePorts(n)
	if err != nil {
		t.Fatal(err)
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
