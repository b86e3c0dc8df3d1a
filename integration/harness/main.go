package harness

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"testing"
)

// Environment variables the harness reads or sets.
const (
	// EnvToolsDir names the folder holding etcd, kube-apiserver and the other
	// tools built by integration/tools/build.sh. `make test` sets it.
	EnvToolsDir = "NODEMESH_TOOLS_DIR"
	// EnvForceUserNamespace, when "1", makes Main use a user+network namespace
	// even as root, to exercise the rootless path.
	EnvForceUserNamespace = "NODEMESH_HARNESS_USERNS"

	envInNamespace = "NODEMESH_HARNESS_IN_NETNS" // set in the re-executed test binary
	envPod         = "NODEMESH_HARNESS_POD"      // set in a pod process: its JSON config
)

// skipReason says why Start cannot run a cluster in this process. Main clears
// it once the process runs inside the private network namespace.
var skipReason = "harness.Main was not called from TestMain, so there is no private network namespace"

// Main runs the tests of a package that uses the harness. Call it from
// TestMain in place of m.Run; it never returns.
//
// It re-executes the test binary, with the same arguments, stdio and
// environment, inside a new network namespace where only lo exists, and exits
// with that child's exit code. The child (and every process the harness starts
// from it) lives and dies in that namespace, so traffic cannot leave the
// machine, and the namespace disappears with its last process: nothing is left
// behind, even after a crash.
//
// When the tools folder is unset or namespaces are unavailable, Main prints
// one line saying why and runs the tests without a namespace: Start then skips
// each test that needs a cluster. With CI=true it fails instead.
//
// Main also serves as the entry point of pod processes (see StartPod), which
// are this same binary re-executed with a pod configuration.
func Main(m *testing.M) {
	if os.Getenv(envPod) != "" {
		os.Exit(runPodProcess())
	}
	if os.Getenv(envInNamespace) == "1" {
		if err := setUpNamespace(); err != nil {
			unavailable(m, fmt.Sprintf("cannot set up the private network namespace: %v", err))
		}
		skipReason = ""
		os.Exit(m.Run())
	}
	if os.Getenv(EnvToolsDir) == "" {
		unavailable(m, EnvToolsDir+" is not set; run `make test`, which builds the control-plane tools and sets it")
	}
	code, err := runInNamespace()
	if err != nil {
		unavailable(m, fmt.Sprintf("cannot create a network namespace (needs Linux user namespaces, or root): %v", err))
	}
	os.Exit(code)
}

// unavailable fails the run under CI and otherwise runs the tests with
// skipReason set, after one line saying why.
func unavailable(m *testing.M, reason string) {
	if os.Getenv("CI") == "true" {
		fmt.Fprintf(os.Stderr, "FAIL: integration tests cannot run: %s (CI=true: not skipping)\n", reason)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "SKIP: integration tests that need a cluster: %s\n", reason)
	skipReason = reason
	os.Exit(m.Run())
}

// runInNamespace re-executes the test binary in a new network namespace and
// returns its exit code. It returns an error only when no namespace could be
// made.
func runInNamespace() (int, error) {
	exe, err := os.Executable()
	if err != nil {
		return 0, err
	}
	var cmd *exec.Cmd
	var errs []error
	for _, attr := range namespaceAttempts() {
		// A Cmd cannot be reused after Start, even a failed one.
		cmd = exec.Command(exe, os.Args[1:]...)
		cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
		cmd.Env = append(os.Environ(), envInNamespace+"=1")
		cmd.SysProcAttr = attr
		if err := cmd.Start(); err != nil {
			errs = append(errs, err)
			cmd = nil
			continue
		}
		break
	}
	if cmd == nil {
		return 0, errors.Join(errs...)
	}
	// Pass on the signals a user or `go test -timeout` sends, so the child
	// can report (SIGQUIT dumps goroutines) and clean up.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGQUIT, syscall.SIGHUP)
	go func() {
		for s := range sigs {
			_ = cmd.Process.Signal(s)
		}
	}()
	_ = cmd.Wait() // the exit status below says everything Wait could
	signal.Stop(sigs)
	ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus)
	if ok && ws.Signaled() {
		fmt.Fprintf(os.Stderr, "harness: test binary killed by %v\n", ws.Signal())
		return 128 + int(ws.Signal()), nil
	}
	return cmd.ProcessState.ExitCode(), nil
}

// namespaceAttempts lists the ways to make the namespace, best first. As
// root a plain network namespace is enough; a user namespace would add
// nothing and hide files owned by unmapped users. Otherwise a user+network
// namespace maps the caller to root inside it, like `unshare -rn`.
//
// The issue suggests `ip netns` as the root fallback; it makes the namespace
// with the same unshare(CLONE_NEWNET) as the plain attempt here, but leaves a
// mount under /run/netns that a killed test would leave behind.
func namespaceAttempts() []*syscall.SysProcAttr {
	plain := &syscall.SysProcAttr{
		Cloneflags: syscall.CLONE_NEWNET,
		Pdeathsig:  syscall.SIGKILL,
	}
	user := &syscall.SysProcAttr{
		Cloneflags:                 syscall.CLONE_NEWUSER | syscall.CLONE_NEWNET,
		UidMappings:                []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getuid(), Size: 1}},
		GidMappings:                []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getgid(), Size: 1}},
		GidMappingsEnableSetgroups: false,
		Pdeathsig:                  syscall.SIGKILL,
	}
	if os.Geteuid() != 0 || os.Getenv(EnvForceUserNamespace) == "1" {
		return []*syscall.SysProcAttr{user}
	}
	return []*syscall.SysProcAttr{plain, user}
}

// inNamespace reports whether this process runs in the namespace Main made.
func inNamespace() bool { return skipReason == "" }
