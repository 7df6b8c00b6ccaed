//go:build unix

package proctest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// Spec says how to start a raftkv process.
type Spec struct {
	Name string // names the process in errors
	Bin  string
	Args []string
	Dir  string   // the working directory; "" is the test's
	Env  []string // added to CleanEnv()
	// Log receives the process's stdout and stderr. Start takes it over: it
	// is closed once the process has exited, or if it cannot start.
	Log *os.File
	// OnExit, if not nil, is called with the exit code from the goroutine
	// that waits for the process, before the process counts as exited: who
	// waits for the exit waits for OnExit too.
	OnExit func(code int)
}

// Proc is a running or exited raftkv process.
type Proc struct {
	Name    string
	LogPath string // the file that holds its output
	cmd     *exec.Cmd
	done    chan struct{} // closed when the process has exited
}

// Start starts the process that s describes without waiting for it to serve.
func Start(s Spec) (*Proc, error) {
	cmd := exec.Command(s.Bin, s.Args...)
	cmd.Dir = s.Dir
	cmd.Env = append(CleanEnv(), s.Env...)
	cmd.Stdout, cmd.Stderr = s.Log, s.Log
	if err := cmd.Start(); err != nil {
		s.Log.Close()
		return nil, fmt.Errorf("start %s: %w", s.Name, err)
	}
	p := &Proc{Name: s.Name, LogPath: s.Log.Name(), cmd: cmd, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait() // the exit status is read from cmd.ProcessState
		s.Log.Close()
		if s.OnExit != nil {
			s.OnExit(cmd.ProcessState.ExitCode())
		}
		close(p.done)
	}()
	return p, nil
}

// CleanEnv is the test's environment without RAFTKV_ settings, so that a
// developer's shell cannot change what the tests start. A race-enabled
// binary sleeps a second at exit by default so that late races get reported;
// a shorter pause keeps "exits promptly" measurable and kill-and-restart
// cycles quick.
func CleanEnv() []string {
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

// Pid is the process's id, for messages that name it.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Signal sends sig to the process.
func (p *Proc) Signal(sig os.Signal) error { return p.cmd.Process.Signal(sig) }

// Exited reports whether the process has exited.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// WaitExit waits up to d for the process to exit and reports whether it did.
func (p *Proc) WaitExit(d time.Duration) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-p.done:
		return true
	case <-timer.C:
		return false
	}
}

// ExitCode is the exit status, or -1 if a signal ended the process. It
// waits for the process to exit.
func (p *Proc) ExitCode() int {
	<-p.done
	return p.cmd.ProcessState.ExitCode()
}

// Kill ends the process with SIGKILL and waits for it.
func (p *Proc) Kill() error {
	if err := p.Signal(syscall.SIGKILL); err != nil && !p.Exited() {
		return fmt.Errorf("kill %s: %w", p.Name, err)
	}
	<-p.done
	return nil
}

// Stop ends the process with SIGTERM, then SIGKILL if it has not exited
// within d, and reports whether SIGTERM was enough.
func (p *Proc) Stop(d time.Duration) bool {
	if p.Exited() {
		return true
	}
	_ = p.Signal(syscall.SIGTERM)
	if p.WaitExit(d) {
		return true
	}
	_ = p.Signal(syscall.SIGKILL)
	<-p.done
	return false
}

// Log returns everything the process has written so far.
func (p *Proc) Log() string {
	b, err := os.ReadFile(p.LogPath)
	if err != nil {
		return "(reading log: " + err.Error() + ")"
	}
	return string(b)
}

// LastLine returns the last non-empty line of the process's output.
func (p *Proc) LastLine() string { return LastLine(p.Log()) }

// LastLine returns the last non-empty line of text: what a server that
// failed to start says about why.
func LastLine(text string) string {
	lines := strings.Split(strings.TrimRight(text, "\n"), "\n")
	return lines[len(lines)-1]
}

// ReportsDataRace reports whether log holds a report of the race detector.
// A race-enabled server carries on after one, so only its output shows it.
func ReportsDataRace(log string) bool {
	return strings.Contains(log, "WARNING: DATA RACE")
}

// FreePorts returns n distinct ports that were free a moment ago. Another
// process may take one before raftkv binds it; callers retry with new ones.
func FreePorts(n int) ([]int, error) {
	ports := make([]int, n)
	lns := make([]net.Listener, 0, n)
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	for i := range ports {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		lns = append(lns, ln)
		ports[i] = ln.Addr().(*net.TCPAddr).Port
	}
	return ports, nil
}
