package controllerbench

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var ctrlProfile = flag.String("controller-profile", "", "folder to write the controller's CPU profile during the weight edits and its heap profile at the steady RSS reading (diagnosis only; starts the controller with --pprof)")

// controllerArgs is the extra flags of `nodemesh controller`: those of
// -controller-args, and --pprof when the controller is profiled.
func controllerArgs() []string {
	args := strings.Fields(*extra)
	if *ctrlProfile != "" {
		args = append(args, "--pprof")
	}
	return args
}

// profileController fetches path from the controller's API port into file
// under *ctrlProfile in the background; the channel closes when it is done
// (at once without -controller-profile).
func profileController(ctx context.Context, t *testing.T, p *controllerProc, path, file string) <-chan struct{} {
	done := make(chan struct{})
	if *ctrlProfile == "" {
		close(done)
		return done
	}
	go func() {
		defer close(done)
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.url+path, nil)
		if err != nil {
			t.Logf("controller %s: %v", path, err)
			return
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Logf("controller %s: %v", path, err)
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Logf("controller %s: %s %v", path, resp.Status, err)
			return
		}
		_ = os.WriteFile(filepath.Join(*ctrlProfile, file), b, 0o644)
	}()
	return done
}

// snapshotControllerMemory copies the controller's smaps, status and
// /metrics into dir (the benchmark's logs): what the RSS reading is made of.
func snapshotControllerMemory(ctx context.Context, t *testing.T, p *controllerProc, dir string, n int) {
	for _, f := range []string{"smaps", "smaps_rollup", "status"} {
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/%s", p.cmd.Process.Pid, f)); err == nil {
			_ = os.WriteFile(filepath.Join(dir, fmt.Sprintf("controller-%s-%d.txt", f, n)), b, 0o644)
		}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.url+"/metrics", nil)
	if err != nil {
		return
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Logf("controller /metrics: %v", err)
		return
	}
	defer resp.Body.Close()
	if b, err := io.ReadAll(resp.Body); err == nil {
		_ = os.WriteFile(filepath.Join(dir, fmt.Sprintf("controller-metrics-%d.txt", n)), b, 0o644)
	}
}
