package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

const (
	// stopGrace is how long a server has to exit after SIGTERM before it
	// is killed: long enough for a clean shutdown, short enough that a hung
	// one does not hold the run.
	stopGrace = 10 * time.Second
	// logTailBytes is how much of a failed server's output an error quotes.
	logTailBytes = 2048
)

// proc is one server process the harness started. Its waiter goroutine is
// the only caller of cmd.Wait; stop ends the process and waits for that
// goroutine, so nothing outlives stop.
type proc struct {
	name    string
	logPath string // the process's stdout and stderr
	cmd     *exec.Cmd
	done    chan struct{} // closed once cmd.Wait returned
	err     error         // cmd.Wait's result, read only after done
	stopped bool          // stop sent the signal, so the exit was asked for
}

// startProc starts argv with env as a server process writing its output to
// logPath. The output goes to a file rather than the terminal because even
// at error level etcd logs benign errors as it shuts down; an error of the
// harness quotes the end of the file when the process failed.
//
// The child gets its own process group so that a Ctrl-C at the terminal
// reaches the harness alone, which then stops its load first and the
// servers after, rather than the servers dying under load. Pdeathsig is the
// backstop should the harness itself be killed: the kernel kills the child
// when the thread that started it exits, which for a Go program means the
// process, since the runtime only ends threads that a goroutine left locked.
func startProc(name string, argv, env []string, logPath string) (*proc, error) {
	logFile, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	// The child has its own copy of the descriptor once started.
	defer logFile.Close()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = env
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, logPath: logPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// pid is the process id, for /proc.
func (p *proc) pid() int { return p.cmd.Process.Pid }

// exited reports an error if the process has already ended: a server that
// died during start-up will never become ready, so waiting on it is pointless.
func (p *proc) exited() error {
	select {
	case <-p.done:
		return p.failure("exited early")
	default:
		return nil
	}
}

// stop sends SIGTERM to the process group, SIGKILL after stopGrace, and
// waits for the process. It reports a process that had died before it was
// asked to, one that failed to exit cleanly and one that had to be killed.
// It is safe to call more than once.
func (p *proc) stop() error {
	if p.stopped {
		return nil
	}
	p.stopped = true
	select {
	case <-p.done:
		return p.failure("died before it was stopped")
	default:
	}
	pgid := p.pid()
	// ESRCH only means the group is already gone; the wait below settles it.
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	timer := time.NewTimer(stopGrace)
	defer timer.Stop()
	select {
	case <-p.done:
		if p.err != nil {
			return p.failure("failed to stop cleanly")
		}
		return nil
	case <-timer.C:
	}
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	<-p.done
	return fmt.Errorf("%s did not exit within %v of SIGTERM and was killed", p.name, stopGrace)
}

// failure describes how the process ended, with the end of its output.
func (p *proc) failure(what string) error {
	return fmt.Errorf("%s %s (%v); its last output:\n%s", p.name, what, p.err, p.logTail())
}

func (p *proc) logTail() string {
	f, err := os.Open(p.logPath)
	if err != nil {
		return fmt.Sprintf("(no output: %v)", err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Size() > logTailBytes {
		if _, err := f.Seek(-logTailBytes, io.SeekEnd); err != nil {
			return fmt.Sprintf("(output unreadable: %v)", err)
		}
	}
	b, err := io.ReadAll(f)
	if err != nil {
		return fmt.Sprintf("(output unreadable: %v)", err)
	}
	if len(b) == 0 {
		return "(none)"
	}
	return strings.TrimRight(string(b), "\n")
}

// stopAll stops the processes one after another, last first, and joins their
// errors. One at a time, because a stopping etcd leader first hands its
// leadership to a follower and, if that follower is stopping too, waits
// seven seconds for a transfer that cannot finish.
func stopAll(procs []*proc) error {
	var errs []error
	for i := len(procs) - 1; i >= 0; i-- {
		errs = append(errs, procs[i].stop())
	}
	return errors.Join(errs...)
}

// freePorts finds n distinct free TCP ports on 127.0.0.1 by listening on port
// 0 and closing. Another program could take a port before the server binds
// it; a server that fails to bind then exits, and the start-up reports it.
func freePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	// All listeners stay open until every port is chosen, so that the
	// kernel cannot hand out the same port twice.
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("find a free port: %w", err)
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}
