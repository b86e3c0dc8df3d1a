package integration_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	accessclient "github.com/servicemeshinterface/smi-sdk-go/pkg/gen/client/access/clientset/versioned"
	specsclient "github.com/servicemeshinterface/smi-sdk-go/pkg/gen/client/specs/clientset/versioned"
	splitclient "github.com/servicemeshinterface/smi-sdk-go/pkg/gen/client/split/clientset/versioned"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextensionsclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/nodemesh/nodemesh/integration/harness"
	"github.com/nodemesh/nodemesh/smi"
)

// TestSMICRDsAndExamples installs the SMI CRDs the way docs/install.md does,
// applies every example, and reads each SMI object back through smi-sdk-go's
// client of every version: served versions must show what the storage
// version holds (minus the fields they lack), unserved ones must be refused.
// Then it pins each conversion decision of docs/smi.md.
func TestSMICRDsAndExamples(t *testing.T) {
	c := harness.Start(t)
	installSMICRDs(t, c)
	clients := newSMIClients(t, c)

	files, err := filepath.Glob(repoPath(t, "smi", "examples", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no examples in smi/examples (%v)", err)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			_, stderr, err := kubectl(t, c, "", "apply", "--server-side", "-f", file)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(stderr, "Warning") {
				t.Errorf("applying %s warned:\n%s", file, stderr)
			}
			for _, doc := range splitYAML(t, file) {
				obj := &unstructured.Unstructured{}
				if err := yaml.Unmarshal(doc, &obj.Object); err != nil {
					t.Fatal(err)
				}
				if !strings.HasSuffix(obj.GroupVersionKind().Group, ".smi-spec.io") {
					continue
				}
				t.Run(obj.GetKind()+"/"+obj.GetName(), func(t *testing.T) {
					clients.readBack(t, doc, obj.GetKind(), obj.GetNamespace(), obj.GetName())
				})
			}
		})
	}

	t.Run("conversion", func(t *testing.T) {
		const ns = "smi-conversion"
		if _, _, err := kubectl(t, c, "", "create", "namespace", ns); err != nil {
			t.Fatal(err)
		}
		checkConversionDecisions(t, c, ns)

		// docs/smi.md's command to list TrafficTargets with a port finds the
		// one the conversion checks wrote, and no other.
		out, _, err := kubectl(t, c, "", "get", "traffictargets.v1alpha2.access.smi-spec.io", "-A", "-o",
			`jsonpath={range .items[?(@.spec.destination.port)]}{.metadata.namespace}/{.metadata.name}{"\n"}{end}`)
		if want := ns + "/with-port"; err != nil || strings.TrimSpace(out) != want {
			t.Errorf("finding TrafficTargets with a port: %q, %v; want %s", out, err, want)
		}
	})
}

// installSMICRDs applies smi/crds with kubectl and waits until every CRD is
// Established, with its storage version recorded and a structural schema.
func installSMICRDs(t *testing.T, c *harness.Cluster) {
	t.Helper()
	if _, _, err := kubectl(t, c, "", "apply", "--server-side", "-k", repoPath(t, "smi", "crds")); err != nil {
		t.Fatal(err)
	}
	crds, err := smi.CRDs()
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"wait", "--for=condition=Established", "--timeout=60s"}
	for _, crd := range crds {
		args = append(args, "crd/"+crd.Name)
	}
	if _, _, err := kubectl(t, c, "", args...); err != nil {
		t.Fatal(err)
	}
	ext, err := apiextensionsclient.NewForConfig(c.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range crds {
		got, err := ext.ApiextensionsV1().CustomResourceDefinitions().Get(t.Context(), want.Name, metaGet)
		if err != nil {
			t.Fatal(err)
		}
		for _, cond := range got.Status.Conditions {
			if cond.Type == apiextensionsv1.NonStructuralSchema && cond.Status == apiextensionsv1.ConditionTrue {
				t.Errorf("%s: non-structural schema: %s", want.Name, cond.Message)
			}
		}
		var storage string
		for _, v := range want.Spec.Versions {
			if v.Storage {
				storage = v.Name
			}
		}
		if !slices.Equal(got.Status.StoredVersions, []string{storage}) {
			t.Errorf("%s: stored versions %v, want [%s]", want.Name, got.Status.StoredVersions, storage)
		}
	}
}

// smiClients are smi-sdk-go's generated clientsets, one per API group.
type smiClients struct {
	split  splitclient.Interface
	specs  specsclient.Interface
	access accessclient.Interface
}

func newSMIClients(t *testing.T, c *harness.Cluster) smiClients {
	t.Helper()
	cfg := c.RESTConfig()
	split, err := splitclient.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	specs, err := specsclient.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	access, err := accessclient.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return smiClients{split: split, specs: specs, access: access}
}

// repoPath is a path in the clone; tests run in integration/.
func repoPath(t *testing.T, parts ...string) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(append([]string{root}, parts...)...)
}

// splitYAML returns the non-empty documents of a multi-document YAML file.
func splitYAML(t *testing.T, file string) [][]byte {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return splitDocs(data)
}

func splitDocs(data []byte) [][]byte {
	var docs [][]byte
	for _, doc := range bytes.Split(append([]byte("\n"), data...), []byte("\n---")) {
		// A document holding only comments is no object.
		if len(bytes.TrimSpace(stripComments(doc))) > 0 {
			docs = append(docs, doc)
		}
	}
	return docs
}

func stripComments(doc []byte) []byte {
	var out [][]byte
	for _, line := range bytes.Split(doc, []byte("\n")) {
		if !bytes.HasPrefix(bytes.TrimSpace(line), []byte("#")) {
			out = append(out, line)
		}
	}
	return bytes.Join(out, []byte("\n"))
}

// sortedPairs renders a map deterministically.
func sortedPairs(m map[string]string) string {
	var kv []string
	for k, v := range m {
		kv = append(kv, fmt.Sprintf("%s=%s", k, v))
	}
	slices.Sort(kv)
	return strings.Join(kv, ",")
}
