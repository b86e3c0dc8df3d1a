package harness

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// netNS is a network namespace the harness made for a node. A holder process
// (sleep, cloned with CLONE_NEWNET) keeps it alive and the harness enters it
// through /proc/<holder>/ns/net. `ip netns add` is not used: it bind-mounts
// the namespace under /run/netns, which a killed test binary leaves behind,
// whereas this namespace ends with its last process and open file.
//
// A nil *netNS stands for the harness namespace itself, so code that runs "in
// the node's namespace" works the same for nodes without one.
type netNS struct {
	name   string
	holder *Process

	mu   sync.Mutex
	file *os.File // the open /proc/<pid>/ns/net; nil once closed
}

// hostNS is the harness namespace, where every thread of the test binary
// runs except while netNS.do has it elsewhere. The main thread never moves,
// so /proc/self/ns/net is it.
var hostNS = sync.OnceValues(func() (*os.File, error) { return os.Open("/proc/self/ns/net") })

// newNetNS makes a network namespace with lo up. logDir receives the
// holder's (empty) log.
func newNetNS(name, logDir string) (*netNS, error) {
	if _, err := hostNS(); err != nil {
		return nil, fmt.Errorf("open the harness namespace: %w", err)
	}
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		return nil, err
	}
	attr := processAttr()
	attr.Cloneflags = syscall.CLONE_NEWNET
	holder, err := startProcessAttr("netns holder of "+name, filepath.Join(logDir, "netns-holder.log"), sleep, []string{"infinity"}, nil, attr)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(fmt.Sprintf("/proc/%d/ns/net", holder.Pid()))
	if err != nil {
		holder.Stop()
		return nil, fmt.Errorf("open the namespace of %s: %w", holder.Name, err)
	}
	ns := &netNS{name: name, holder: holder, file: f}
	if err := ns.ip("link", "set", "lo", "up"); err != nil {
		ns.close()
		return nil, err
	}
	return ns, nil
}

// do runs fn on an OS thread switched into ns, then switches the thread back.
// Sockets fn opens belong to ns for their whole life, and processes it
// starts run in ns. fn runs on another goroutine: it must not call t.Fatal.
func (ns *netNS) do(fn func() error) error {
	if ns == nil {
		return fn()
	}
	host, err := hostNS()
	if err != nil {
		return err
	}
	ns.mu.Lock()
	f := ns.file
	ns.mu.Unlock()
	if f == nil {
		return fmt.Errorf("the network namespace of %s is gone", ns.name)
	}
	errc := make(chan error, 1)
	go func() {
		// Locked, the goroutine alone runs on this thread, so nothing else
		// sees the switched namespace; a thread that cannot switch back stays
		// locked and Go ends it with the goroutine.
		runtime.LockOSThread()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("enter the network namespace of %s: %w", ns.name, err)
			return
		}
		ferr := fn()
		if err := unix.Setns(int(host.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- errors.Join(ferr, fmt.Errorf("leave the network namespace of %s: %w", ns.name, err))
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// ip runs `ip args...` in ns.
func (ns *netNS) ip(args ...string) error {
	return ns.do(func() error { return ipCommand(args...) })
}

// holderPid is the pid that names ns to `ip link ... netns <pid>`.
func (ns *netNS) holderPid() int { return ns.holder.Pid() }

// closed reports whether close was called; the harness namespace never is.
func (ns *netNS) closed() bool {
	if ns == nil {
		return false
	}
	ns.mu.Lock()
	defer ns.mu.Unlock()
	return ns.file == nil
}

// close lets the namespace go: it ends once the processes still in it have.
func (ns *netNS) close() {
	ns.mu.Lock()
	f := ns.file
	ns.file = nil
	ns.mu.Unlock()
	if f != nil {
		_ = f.Close()
	}
	ns.holder.Stop()
}

// startProcessIn starts a process as startProcess does, inside ns.
func startProcessIn(ns *netNS, name, logPath, path string, args, env []string, extra ...*os.File) (*Process, error) {
	return startProcessEnvIn(ns, name, logPath, path, args, append(os.Environ(), env...), extra...)
}

// startProcessEnvIn starts a process with exactly the environment env,
// inside ns.
func startProcessEnvIn(ns *netNS, name, logPath, path string, args, env []string, extra ...*os.File) (*Process, error) {
	var p *Process
	err := ns.do(func() (err error) {
		p, err = startProcessAttr(name, logPath, path, args, env, processAttr(), extra...)
		return err
	})
	return p, err
}
