package cmdline

import (
	"strings"
	"testing"
)

func TestToKebab(t *testing.T) {
	for in, want := range map[string]string{
		"WatchNamespaces": "watch-namespaces",
		"HTTPPort":        "http-port",
		"ProxyURLs":       "proxy-urls",
		"ProxyUrls":       "proxy-urls",
		"ACL":             "acl",
		"KubeQPS":         "kube-qps",
		"TCPPortRange":    "tcp-port-range",
		"KubeDNSStubIP":   "kube-dns-stub-ip",
		"GCPercent":       "gc-percent",
		"IDs":             "ids",
	} {
		if got := toKebab(in); got != want {
			t.Errorf("toKebab(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestNormalizeFlag(t *testing.T) {
	for in, want := range map[string]string{
		"--watch-namespaces=a,b": "--watchnamespaces=a,b",
		"--acl":                  "--acl",
		"--config-file":          "--configfile",
		"-n":                     "-n",
		"value-with-dash":        "value-with-dash",
		"--x=a-b":                "--x=a-b",
	} {
		if got := normalizeFlag(in); got != want {
			t.Errorf("normalizeFlag(%q) = %q, want %q", in, got, want)
		}
	}
}

// Shared is embedded in embedding, as the ops commands embed their shared
// options.
type Shared struct {
	MeshNamespace string `description:"mesh namespace" export:"true"`
}

type embedding struct {
	Shared
	Output string `description:"output" export:"true"`
}

// TestOptionsFlattenEmbeddedStructs: an embedded struct's options keep
// their own names, as paerser reads them.
func TestOptionsFlattenEmbeddedStructs(t *testing.T) {
	var got []string
	for _, o := range Options(&embedding{Shared: Shared{MeshNamespace: "nodemesh"}, Output: "text"}) {
		got = append(got, o.Kebab+"="+o.Default+" "+o.Env())
	}
	want := []string{"mesh-namespace=nodemesh NODEMESH_MESH_NAMESPACE", "output=text NODEMESH_OUTPUT"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("options %q, want %q", got, want)
	}
}
