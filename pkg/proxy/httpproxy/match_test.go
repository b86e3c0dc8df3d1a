package httpproxy

import (
	"net/http"
	"testing"

	"github.com/nodemesh/nodemesh/pkg/table"
)

// TestEveryAlternativeOfAPathRegexIsAnchored: SMI anchors pathRegex at the
// start of the path. "/a|/b" must not send "/x/b" to the rule's backends:
// a bare "^" prefix anchored only the first alternative. A Host header
// match sees the request's Host, which net/http keeps out of Request.Header.
func TestEveryAlternativeOfAPathRegexIsAnchored(t *testing.T) {
	v1, v2, v3 := newBackend(t, "v1"), newBackend(t, "v2"), newBackend(t, "v3")
	r := httpRoute("web", 80, backendOf("web-v1", 1, addr(v1.srv)))
	r.Matches = []table.HTTPMatchRoute{
		{Name: "ab", Match: table.HTTPMatch{PathRegex: "/a|/b"}, Backends: []table.Backend{backendOf("web-v2", 1, addr(v2.srv))}},
		{Name: "host", Match: table.HTTPMatch{Headers: []table.HeaderMatch{{Name: "Host", Regex: `^web\.shop\.mesh$`}}, PathRegex: "^/host$"},
			Backends: []table.Backend{backendOf("web-v3", 1, addr(v3.srv))}},
	}
	p := newProxy(t, Options{})
	p.apply(t, tableOf(r))
	for path, want := range map[string]string{"/a": "v2", "/b/c": "v2", "/x/b": "v1", "/x/a": "v1", "/host": "v3"} {
		req, _ := http.NewRequest("GET", p.url+path, nil)
		req.Host = "web.shop.mesh"
		resp, err := testClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := resp.Header.Get("X-Backend"); got != want {
			t.Errorf("%s went to %q, want %q", path, got, want)
		}
	}
}
