package harness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// stopGrace is how long Stop waits after SIGTERM before SIGKILL. Everything
// the harness runs keeps its state in temporary folders, so a short grace
// only buys tidier logs.
const stopGrace = 3 * time.Second

// Process is a child process the harness started: a control-plane component,
// a pod, or any tool run with Cluster.RunTool. Its stdout and stderr go to
// LogPath. It is killed if the test binary dies (Pdeathsig), and it runs in its
// own process group so that Stop also ends whatever it started.
type Process struct {
	// Name identifies the process in messages, e.g. "etcd" or "pod default/a".
	Name string
	// LogPath is the file holding its stdout and stderr.
	LogPath string

	cmd     *exec.Cmd
	done    chan struct{} // closed once the process has exited
	stopped chan struct{} // closed when Stop begins
	err     error         // from Wait; read after done is closed
	// reported is set once an unexpected exit was described in an error.
	reported atomic.Bool
}

// startProcess starts path with args, logging to logPath. extra files become
// fds 3, 4, ... in the child; the caller closes its own copies.
func startProcess(name, logPath, path string, args, env []string, extra ...*os.File) (*Process, error) {
	// Pdeathsig fires when the forking OS thread ends, which Go only does for
	// a goroutine that exits locked to its thread; the harness never does
	// (netNS.do switches a locked thread back before unlocking it).
	return startProcessAttr(name, logPath, path, args, append(os.Environ(), env...), processAttr(), extra...)
}

// processAttr are the attributes of every harness process: its own process
// group, so that Stop ends whatever it started, and death with the harness.
func processAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// startProcessAttr is startProcess with exactly the environment env and the
// given process attributes, which should keep those of processAttr.
func startProcessAttr(name, logPath, path string, args, env []string, attr *syscall.SysProcAttr, extra ...*os.File) (*Process, error) {
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer logFile.Close() // the child has its own copy
	cmd := exec.Command(path, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Env = env
	cmd.ExtraFiles = extra
	cmd.SysProcAttr = attr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &Process{Name: name, LogPath: logPath, cmd: cmd, done: make(chan struct{}), stopped: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// Pid is the process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Done is closed once the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has exited.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Err is how the process exited (nil for status 0); only meaningful once
// Done is closed.
func (p *Process) Err() error {
	if !p.Exited() {
		return nil
	}
	return p.err
}

// Stop ends the process group: SIGTERM, then SIGKILL after a grace period.
// It returns once the process has exited. Stopping twice is harmless.
func (p *Process) Stop() {
	select {
	case <-p.stopped:
	default:
		close(p.stopped)
	}
	pgid := p.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM) // ESRCH when already gone
	select {
	case <-p.done:
	case <-time.After(stopGrace):
	}
	// Kill the whole group even after the leader exited: children may linger.
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	<-p.done
}

// exitedOnItsOwn reports whether the process ended without Stop.
func (p *Process) exitedOnItsOwn() bool {
	select {
	case <-p.stopped:
		return false
	default:
		return p.Exited()
	}
}

// Tail returns the last n lines of the process's log.
func (p *Process) Tail(n int) string {
	data, err := os.ReadFile(p.LogPath)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", p.LogPath, err)
	}
	lines := bytes.Split(bytes.TrimRight(data, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}

// exitError describes an unexpected exit with the end of the log.
func (p *Process) exitError() error {
	p.reported.Store(true)
	return fmt.Errorf("%s exited unexpectedly (%v); last lines of %s:\n%s", p.Name, p.Err(), p.LogPath, p.Tail(30))
}

// manage stops p when t's test ends. If the test failed, or p died before
// that, it logs the end of p's log.
func manage(t testing.TB, p *Process) {
	t.Cleanup(func() {
		if p.exitedOnItsOwn() {
			if !p.reported.Load() {
				t.Errorf("%v", p.exitError())
			}
			p.Stop() // whatever it started may still run in its group
			return
		}
		p.Stop()
		if t.Failed() {
			t.Logf("last lines of %s (%s):\n%s", p.Name, p.LogPath, p.Tail(30))
		}
	})
}

// RunTool starts a binary from the tools folder (coredns, kube-proxy, ...) as
// a managed process with KUBECONFIG set to the cluster's admin kubeconfig. It
// is stopped when t's test ends; its output goes to a log file in
// t.TempDir(), whose end is printed if the test fails. A tool that exits
// before the end of the test fails it; run short commands with Kubectl.
func (c *Cluster) RunTool(t testing.TB, name string, args ...string) *Process {
	t.Helper()
	path, err := c.tool(name)
	if err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(t.TempDir(), name+".log")
	p, err := startProcess(name, logPath, path, args, []string{"KUBECONFIG=" + c.kubeconfig})
	if err != nil {
		t.Fatal(err)
	}
	manage(t, p)
	return p
}

// Kubectl runs kubectl with the cluster's admin kubeconfig and returns its
// stdout. The error carries kubectl's stderr. It gives up after a minute.
func (c *Cluster) Kubectl(t testing.TB, args ...string) (string, error) {
	t.Helper()
	path, err := c.tool("kubectl")
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, append([]string{"--kubeconfig", c.kubeconfig}, args...)...)
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// tool returns the path of a binary from the tools folder, or an error that
// says how to build it.
func (c *Cluster) tool(name string) (string, error) {
	return findTool(c.ToolsDir, name)
}

func findTool(dir, name string) (string, error) {
	path := filepath.Join(dir, name)
	info, err := os.Stat(path)
	if err == nil && info.Mode()&0o111 == 0 {
		err = errors.New("not executable")
	}
	if err != nil {
		return "", fmt.Errorf("tool %q is missing from %s=%s (%v); run integration/tools/build.sh or `make test`", name, EnvToolsDir, dir, err)
	}
	return path, nil
}
