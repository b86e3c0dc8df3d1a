package integration_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/scheme"

	"github.com/nodemesh/nodemesh/integration/harness"
)

// TestInstall renders daemonset/ as `kubectl apply -k daemonset/` does,
// checks the rendered objects against the mesh's fixed contracts and the
// binary's flags, renders the overlays docs/install.md shows, applies the
// base to a real apiserver (server-side dry run, then for real), checks what
// the controller's and the proxy's RBAC allow and forbid, and uninstalls
// both ways docs/install.md describes.
func TestInstall(t *testing.T) {
	c := harness.Start(t)
	base := repoPath(t, "daemonset")
	rendered := render(t, c, base)
	objs := decodeAll(t, rendered)

	t.Run("rendered objects keep the fixed contracts", func(t *testing.T) {
		checkContracts(t, objs)
	})
	t.Run("every flag in the manifests exists in the binary", func(t *testing.T) {
		checkFlags(t, objs)
	})

	// A server-side dry run creates nothing, so the objects in the mesh
	// namespace need the namespace to exist already.
	if _, _, err := kubectl(t, c, "", "create", "namespace", "nodemesh", "--save-config"); err != nil {
		t.Fatal(err)
	}
	t.Run("server-side dry run accepts the base without warnings", func(t *testing.T) {
		applyClean(t, c, rendered, "--dry-run=server")
	})

	t.Run("the access-control overlay of docs/install.md renders", func(t *testing.T) {
		overlay := t.TempDir()
		writeFile(t, filepath.Join(overlay, "kustomization.yaml"), fmt.Sprintf(`apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources: [%q]
patches:
- target: {kind: Deployment, name: nodemesh-controller}
  patch: |-
    - op: add
      path: /spec/template/spec/containers/0/args/-
      value: --acl=true
`, relPath(t, overlay, base)))
		withACL := decodeAll(t, render(t, c, overlay))
		ctrl := find[*appsv1.Deployment](withACL, "nodemesh-controller")
		if ctrl == nil {
			t.Fatal("no controller in the overlay")
		}
		wantArgs(t, "controller", ctrl.Spec.Template.Spec.Containers[0].Args, "--acl=true")
		checkFlags(t, withACL)
	})

	t.Run("the podmonitor component renders monitors that find the pods", func(t *testing.T) {
		overlay := t.TempDir()
		writeFile(t, filepath.Join(overlay, "kustomization.yaml"), fmt.Sprintf(
			"apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [%q]\ncomponents: [%q]\n",
			relPath(t, overlay, base), relPath(t, overlay, filepath.Join(base, "components", "podmonitor"))))
		withMonitors := render(t, c, overlay)
		checkPodMonitors(t, withMonitors, objs)
		// The Prometheus Operator's CRDs are not ours to ship; a minimal
		// stand-in lets the apiserver check kind, version and metadata.
		applyClean(t, c, podMonitorCRD, "--server-side")
		if _, _, err := kubectl(t, c, "", "wait", "--for=condition=Established", "--timeout=60s", "crd/podmonitors.monitoring.coreos.com"); err != nil {
			t.Fatal(err)
		}
		applyClean(t, c, withMonitors, "--dry-run=server")
	})

	install := func(t *testing.T) {
		t.Helper()
		out, stderr, err := kubectl(t, c, "", "apply", "-k", base)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(stderr, "Warning") {
			t.Errorf("install warned:\n%s", stderr)
		}
		for _, want := range []string{"deployment.apps/nodemesh-controller", "daemonset.apps/nodemesh-proxy", "service/nodemesh-controller"} {
			if !strings.Contains(out, want) {
				t.Errorf("install output lacks %q:\n%s", want, out)
			}
		}
	}
	// A user's TrafficSplit shows what each way of uninstalling does to SMI
	// objects.
	userSplit := "apiVersion: split.smi-spec.io/v1alpha4\nkind: TrafficSplit\nmetadata: {name: web, namespace: default}\n" +
		"spec: {service: web, backends: [{service: web-v1, weight: 1}]}\n"

	t.Run("kubectl apply -k installs", func(t *testing.T) {
		install(t)
		applyClean(t, c, userSplit)
	})

	t.Run("RBAC allows what each component does and nothing more", func(t *testing.T) {
		checkRBAC(t, c)
	})

	t.Run("uninstalling by name keeps the SMI CRDs and objects", func(t *testing.T) {
		// The commands of docs/install.md, less `nodemesh dns restore`.
		for _, cmd := range []string{
			"delete namespace nodemesh",
			"delete clusterrolebinding,clusterrole nodemesh-controller",
			"-n kube-system delete rolebinding,role nodemesh-controller-dns",
		} {
			if _, _, err := kubectl(t, c, "", strings.Fields(cmd)...); err != nil {
				t.Fatal(err)
			}
		}
		if _, _, err := kubectl(t, c, "", "get", "trafficsplit", "web", "-n", "default"); err != nil {
			t.Errorf("the user's TrafficSplit is gone: %v", err)
		}
		install(t) // again, for the full uninstall below
	})

	t.Run("kubectl delete -k uninstalls, SMI CRDs included", func(t *testing.T) {
		if _, _, err := kubectl(t, c, "", "delete", "-k", base); err != nil {
			t.Fatal(err)
		}
		out, _, err := kubectl(t, c, "", "get", "namespaces,crds", "-o", "name")
		if err != nil {
			t.Fatal(err)
		}
		for _, gone := range []string{"namespace/nodemesh", "smi-spec.io"} {
			if strings.Contains(out, gone) {
				t.Errorf("%s is left after uninstall:\n%s", gone, out)
			}
		}
	})
}

// render runs `kubectl kustomize dir`: the kustomize built into kubectl is
// what `kubectl apply -k` uses.
func render(t *testing.T, c *harness.Cluster, dir string) string {
	t.Helper()
	out, _, err := kubectl(t, c, "", "kustomize", dir)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// applyClean applies manifests from stdin with extra flags, failing on an
// error or any warning (a PodSecurity violation shows as one).
func applyClean(t *testing.T, c *harness.Cluster, manifests string, flags ...string) {
	t.Helper()
	_, stderr, err := kubectl(t, c, manifests, append([]string{"apply", "-f", "-"}, flags...)...)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(stderr, "Warning") {
		t.Errorf("apply %v warned:\n%s", flags, stderr)
	}
}

// kubectl runs the harness's kubectl against c with stdin, returning stdout
// and stderr; the error carries stderr.
func kubectl(t *testing.T, c *harness.Cluster, stdin string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(c.ToolsDir, "kubectl"), append([]string{"--kubeconfig", c.Kubeconfig()}, args...)...)
	cmd.WaitDelay = 5 * time.Second
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return out.String(), errOut.String(), fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(errOut.String()))
	}
	return out.String(), errOut.String(), nil
}

// decodeAll decodes rendered manifests into typed objects (CRDs excluded:
// client-go's scheme does not know them, and the SMI test covers them).
func decodeAll(t *testing.T, manifests string) []runtime.Object {
	t.Helper()
	var objs []runtime.Object
	for _, doc := range splitDocs([]byte(manifests)) {
		if bytes.Contains(doc, []byte("kind: CustomResourceDefinition")) {
			continue
		}
		obj, _, err := scheme.Codecs.UniversalDeserializer().Decode(doc, nil, nil)
		if err != nil {
			t.Fatalf("rendered object does not decode: %v\n%s", err, doc)
		}
		objs = append(objs, obj)
	}
	return objs
}

// relPath is target relative to dir: kustomize refuses absolute paths.
func relPath(t *testing.T, dir, target string) string {
	t.Helper()
	rel, err := filepath.Rel(dir, target)
	if err != nil {
		t.Fatal(err)
	}
	return rel
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// nodemeshBin is the binary `make test` built, or "" with the reason.
func nodemeshBin() (string, error) {
	bin := os.Getenv("NODEMESH_BIN")
	if bin == "" {
		return "", errors.New("NODEMESH_BIN is not set; run `make test`, which builds bin/nodemesh and sets it")
	}
	if _, err := os.Stat(bin); err != nil {
		return "", err
	}
	return bin, nil
}

// podMonitorCRD stands in for the Prometheus Operator's PodMonitor CRD.
const podMonitorCRD = `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: podmonitors.monitoring.coreos.com
spec:
  group: monitoring.coreos.com
  scope: Namespaced
  names: {kind: PodMonitor, listKind: PodMonitorList, plural: podmonitors, singular: podmonitor}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec: {type: object, x-kubernetes-preserve-unknown-fields: true}
`
