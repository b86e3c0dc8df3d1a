package cmdline

import "testing"

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
