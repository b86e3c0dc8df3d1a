package controllerbench

import (
	"context"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"k8s.io/client-go/kubernetes"
)

var apiProfile = flag.String("apiserver-profile", "", "folder to write a 20 s CPU profile and /metrics of kube-apiserver taken during the cold start (diagnosis only)")

// profileAPIServer writes kube-apiserver's /metrics, a 20 s CPU profile
// and /metrics again into *apiProfile.
func profileAPIServer(ctx context.Context, t *testing.T, kube kubernetes.Interface) {
	if *apiProfile == "" {
		return
	}
	get := func(path string, params map[string]string, file string) {
		r := kube.CoreV1().RESTClient().Get().AbsPath(path)
		for k, v := range params {
			r = r.Param(k, v)
		}
		b, err := r.DoRaw(ctx)
		if err != nil {
			t.Logf("apiserver %s: %v", path, err)
			return
		}
		_ = os.WriteFile(filepath.Join(*apiProfile, file), b, 0o644)
	}
	go func() {
		get("/metrics", nil, "metrics-before.txt")
		get("/debug/pprof/profile", map[string]string{"seconds": "20"}, "apiserver.pprof")
		get("/metrics", nil, "metrics-after.txt")
	}()
}
