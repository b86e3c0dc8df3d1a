package edges

import (
	"net/netip"
	"testing"

	"github.com/nodemesh/nodemesh/pkg/table"
)

func TestSourceLabelsFromPods(t *testing.T) {
	tb := &table.Table{Pods: []table.Pod{
		{IP: "10.244.1.5", Namespace: "shop", Name: "web-abc-1", ServiceAccount: "web", Workload: "Deployment/web"},
		{IP: "10.244.1.6", Namespace: "shop", Name: "web-abc-2", ServiceAccount: "web", Workload: "Deployment/web"},
		{IP: "10.244.1.7", Namespace: "shop", Name: "debug", ServiceAccount: ""}, // hand-written table: no workload, no SA
		{IP: "fd00::7", Namespace: "db", Name: "pg-0", ServiceAccount: "pg", Workload: "StatefulSet/pg"},
		{IP: "10.244.1.9", Namespace: "a", Name: "x", Workload: "Pod/x"}, // two pods claim one IP:
		{IP: "10.244.1.9", Namespace: "b", Name: "y", Workload: "Pod/y"}, // neither gets it
		{IP: "not-an-ip", Namespace: "a", Name: "z"},
	}}
	s := Build(tb)
	tests := []struct {
		remote string
		want   Source
	}{
		{"10.244.1.5:40000", Source{"shop", "Deployment/web", "web"}},
		{"10.244.1.6:40001", Source{"shop", "Deployment/web", "web"}},
		{"10.244.1.7:1", Source{"shop", "Pod/debug", "default"}},
		{"[fd00::7]:5432", Source{"db", "StatefulSet/pg", "pg"}},
		{"[::ffff:10.244.1.5]:1", Source{"shop", "Deployment/web", "web"}}, // IPv4-mapped
		{"10.244.1.9:1", *Unknown},
		{"10.0.0.1:1", *Unknown},
		{"garbage", *Unknown},
	}
	for _, tc := range tests {
		if got := s.LookupRemote(tc.remote); *got != tc.want {
			t.Errorf("%s: %+v, want %+v", tc.remote, *got, tc.want)
		}
	}
	if a, b := s.LookupRemote("10.244.1.5:1"), s.LookupRemote("10.244.1.6:1"); a != b {
		t.Error("two pods of one workload must share one interned Source")
	}
	if n := s.Len(); n != 3 {
		t.Errorf("%d distinct sources, want 3", n)
	}
	var nilSources *Sources
	if nilSources.Lookup(netip.MustParseAddr("10.244.1.5")) != Unknown {
		t.Error("a nil Sources must know nobody")
	}
}

func TestGone(t *testing.T) {
	old := Build(&table.Table{Pods: []table.Pod{
		{IP: "10.0.0.1", Namespace: "a", Name: "p", ServiceAccount: "s", Workload: "Deployment/w"},
		{IP: "10.0.0.2", Namespace: "a", Name: "q", ServiceAccount: "s", Workload: "Deployment/gone"},
	}})
	next := Build(&table.Table{Pods: []table.Pod{
		{IP: "10.0.0.3", Namespace: "a", Name: "r", ServiceAccount: "s", Workload: "Deployment/w"}, // same workload, new pod
	}})
	gone := Gone(old, next)
	if len(gone) != 1 || gone[0].Workload != "Deployment/gone" {
		t.Errorf("gone = %+v, want only Deployment/gone", gone)
	}
	if Gone(nil, next) != nil {
		t.Error("nothing is gone from no table")
	}
}

func TestResolverBuildsEachTableOnce(t *testing.T) {
	var r Resolver
	a, b := &table.Table{}, &table.Table{}
	sa := r.For(a)
	if r.For(a) != sa {
		t.Fatal("the same table must give the same Sources")
	}
	sb := r.For(b)
	if r.For(a) != sa || r.For(b) != sb {
		t.Fatal("the last two tables must both be kept")
	}
}

func TestCacheFollowsTheNewestTable(t *testing.T) {
	built := 0
	c := Cache[int]{New: func(*Source) *int { built++; v := built; return &v }}
	older := Build(&table.Table{})
	newer := Build(&table.Table{})
	s := &Source{"a", "b", "c"}
	first := c.Get(older, s)
	if c.Get(older, s) != first || built != 1 {
		t.Fatal("a second lookup must hit the cache")
	}
	n := c.Get(newer, s)
	if n == first || built != 2 {
		t.Fatal("a newer table's Sources must empty the cache")
	}
	if c.Get(older, s) == n || built != 3 {
		t.Fatal("an older table's lookup gets a value of its own")
	}
	if c.Get(newer, s) != n {
		t.Fatal("an older table's lookup must not evict the newer generation")
	}
	c.Reset()
	if c.Get(newer, s) == n {
		t.Fatal("Reset must empty the cache")
	}
}

func TestClass(t *testing.T) {
	for code, want := range map[int]string{101: "1xx", 200: "2xx", 304: "3xx", 404: "4xx", 499: "4xx", 503: "5xx", 0: "5xx", 999: "5xx"} {
		if got := CodeClasses[Class(code)]; got != want {
			t.Errorf("Class(%d) = %s, want %s", code, got, want)
		}
	}
}

func TestRemoteIP(t *testing.T) {
	for remote, want := range map[string]string{
		"10.244.1.5:40000":      "10.244.1.5",
		"0.0.0.0:1":             "0.0.0.0",
		"255.255.255.255:65535": "255.255.255.255",
		"[fd00::1]:80":          "fd00::1",
		"[::ffff:10.0.0.1]:80":  "::ffff:10.0.0.1",
		"10.244.1.5":            "", // no port: not a RemoteAddr
		"10.244.1:80":           "",
		"10.244.1.256:80":       "",
		"10.244.01.5:80":        "10.244.1.5", // leading zero: harmless here, it only misses the index
		"10..1.5:80":            "",
		"1.2.3.4.5:80":          "",
		"1000.2.3.4:80":         "",
		"":                      "",
		"web:80":                "",
	} {
		addr, ok := remoteIP(remote)
		if got := addr.String(); (want == "") == ok || (ok && got != want) {
			t.Errorf("remoteIP(%q) = %s, %v; want %q", remote, got, ok, want)
		}
	}
}
