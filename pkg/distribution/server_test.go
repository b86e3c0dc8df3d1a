package distribution

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nodemesh/nodemesh/pkg/table"
)

func testTable(name string) *table.Table {
	return &table.Table{Schema: table.SchemaVersion, HTTP: []table.HTTPRoute{{
		Service: table.ServiceRef{Namespace: "ns", Name: name}, Port: 80,
		Hosts: []string{name + ".ns.mesh"}, Scheme: table.SchemeHTTP, DefaultPort: true,
	}}}
}

// get sends one poll to srv with the given query and returns the response
// and its body.
func get(t *testing.T, srv *httptest.Server, query string, hdr ...string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, srv.URL+Path+"?"+query, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	tr := &http.Transport{DisableCompression: true}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestServerAnswersAtOnceWhenVersionDiffers(t *testing.T) {
	s := NewServer(ServerOptions{InitialVersion: 7})
	v := s.Publish(testTable("web"))
	if v != 7 {
		t.Fatalf("first version = %d, want 7", v)
	}
	srv := httptest.NewServer(s)
	defer srv.Close()
	for _, have := range []string{"0", "6", "8", ""} {
		start := time.Now()
		resp, body := get(t, srv, "version="+have+"&wait=10s")
		if resp.StatusCode != 200 || resp.Header.Get(HeaderVersion) != "7" {
			t.Fatalf("version=%s: status %d header %q", have, resp.StatusCode, resp.Header.Get(HeaderVersion))
		}
		if time.Since(start) > 5*time.Second {
			t.Fatalf("version=%s: answer was held", have)
		}
		got, err := table.Decode([]byte(body))
		if err != nil || got.Version != 7 || got.HTTP[0].Service.Name != "web" {
			t.Fatalf("body %q: %v", body, err)
		}
	}
}

func TestServerHoldsThenAnswers304(t *testing.T) {
	s := NewServer(ServerOptions{InitialVersion: 3})
	srv := httptest.NewServer(s)
	defer srv.Close()
	tests := []struct {
		name    string
		publish bool
		query   string
	}{
		{"no table yet", false, "version=0&wait=50ms"},
		{"client is current", true, "version=3&wait=50ms"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.publish {
				s.Publish(testTable("web"))
			}
			start := time.Now()
			resp, _ := get(t, srv, tt.query)
			if resp.StatusCode != http.StatusNotModified {
				t.Fatalf("status %d, want 304", resp.StatusCode)
			}
			if time.Since(start) < 50*time.Millisecond {
				t.Fatalf("answered before wait passed")
			}
		})
	}
}

func TestServerWakesHeldPollOnPublish(t *testing.T) {
	s := NewServer(ServerOptions{InitialVersion: 1})
	s.Publish(testTable("web"))
	srv := httptest.NewServer(s)
	defer srv.Close()
	type answer struct {
		code int
		ver  string
	}
	done := make(chan answer, 1)
	go func() {
		resp, _ := get(t, srv, "version=1&wait=20s&node=n1")
		done <- answer{resp.StatusCode, resp.Header.Get(HeaderVersion)}
	}()
	waitFor(t, func() bool { return s.held() == 1 })
	if v := s.Publish(testTable("api")); v != 2 {
		t.Fatalf("version after a change = %d, want 2", v)
	}
	select {
	case a := <-done:
		if a.code != 200 || a.ver != "2" {
			t.Fatalf("got %d version %s, want 200 version 2", a.code, a.ver)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("held poll was not woken by Publish")
	}
}

func TestServerDoesNotBumpForIdenticalContent(t *testing.T) {
	s := NewServer(ServerOptions{InitialVersion: 10})
	srv := httptest.NewServer(s)
	defer srv.Close()
	v1 := s.Publish(testTable("web"))
	again := testTable("web")
	again.Version = 999 // Version is ignored when comparing content
	done := make(chan int, 1)
	go func() {
		resp, _ := get(t, srv, "version=10&wait=300ms&node=n1")
		done <- resp.StatusCode
	}()
	waitFor(t, func() bool { return s.held() == 1 })
	if v2 := s.Publish(again); v2 != v1 {
		t.Fatalf("identical content bumped the version: %d -> %d", v1, v2)
	}
	if code := <-done; code != http.StatusNotModified {
		t.Fatalf("identical publish woke the poll: %d", code)
	}
	if got := s.Current().Version; got != v1 {
		t.Fatalf("Current().Version = %d, want %d", got, v1)
	}
}

func TestServerVersionSeededFromClock(t *testing.T) {
	now := time.UnixMilli(1_800_000_000_000)
	s := NewServer(ServerOptions{Now: func() time.Time { return now }})
	if v := s.Publish(testTable("web")); v != 1_800_000_000_000 {
		t.Fatalf("first version = %d, want the clock in ms", v)
	}
}

func TestServerRejectsBadRequests(t *testing.T) {
	s := NewServer(ServerOptions{})
	srv := httptest.NewServer(s)
	defer srv.Close()
	for _, q := range []string{"version=x", "applied=-1", "ready=maybe", "wait=soon", "wait=-1s", "node=" + strings.Repeat("n", 254)} {
		if resp, _ := get(t, srv, q); resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%s: status %d, want 400", q[:min(len(q), 20)], resp.StatusCode)
		}
	}
	resp, err := http.Post(srv.URL+Path, "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST: status %d, want 405", resp.StatusCode)
	}
}

func TestServerGzipsLargeTables(t *testing.T) {
	s := NewServer(ServerOptions{InitialVersion: 1})
	big := testTable("web")
	for i := 0; i < 400; i++ {
		big.HTTP[0].Hosts = append(big.HTTP[0].Hosts, "alias"+strconv.Itoa(i)+".ns.mesh")
	}
	s.Publish(big)
	srv := httptest.NewServer(s)
	defer srv.Close()
	resp, body := get(t, srv, "version=0", "Accept-Encoding", "gzip")
	if resp.Header.Get("Content-Encoding") != "gzip" {
		t.Fatalf("no gzip: %v", resp.Header)
	}
	zr, err := gzip.NewReader(strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	plain, _ := io.ReadAll(zr)
	if got, err := table.Decode(plain); err != nil || len(got.HTTP[0].Hosts) != 401 {
		t.Fatalf("gzipped body does not decode: %v", err)
	}
}

func TestServerTracksNodes(t *testing.T) {
	now := time.Unix(1000, 0)
	s := NewServer(ServerOptions{InitialVersion: 5, NodeExpiry: time.Minute, Now: func() time.Time { return now }})
	s.Publish(testTable("web"))
	srv := httptest.NewServer(s)
	defer srv.Close()
	get(t, srv, "version=0&node=b&applied=4&ready=true")
	get(t, srv, "version=0&node=a&applied=0&ready=false")
	done := make(chan struct{})
	go func() { get(t, srv, "version=5&node=c&applied=5&ready=true&wait=20s"); close(done) }()
	waitFor(t, func() bool { return s.held() == 1 })

	got := s.Nodes()
	want := []NodeStatus{
		{Node: "a", AppliedVersion: 0, Ready: false, LastSeen: now},
		{Node: "b", AppliedVersion: 4, Ready: true, LastSeen: now},
		{Node: "c", AppliedVersion: 5, Ready: true, LastSeen: now, Connected: true},
	}
	if len(got) != len(want) {
		t.Fatalf("Nodes() = %+v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("node %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	now = now.Add(2 * time.Minute) // a and b expire; c is still connected
	got = s.Nodes()
	if len(got) != 1 || got[0].Node != "c" {
		t.Fatalf("after expiry Nodes() = %+v, want only c", got)
	}
	s.Publish(testTable("api")) // releases c
	<-done
}

// held counts polls currently held open by named nodes.
func (s *Server) held() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, st := range s.nodes {
		n += st.inflight
	}
	return n
}

// waitFor polls cond for up to 10 s.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// TestPublishedBodyIsTheEncodedTable checks that the body joined from the
// table's parts is exactly what encoding the versioned table gives.
func TestPublishedBodyIsTheEncodedTable(t *testing.T) {
	srv := NewServer(ServerOptions{InitialVersion: 12345})
	tb := &table.Table{Schema: table.SchemaVersion, ACL: true, Pods: []table.Pod{{IP: "10.244.1.2", Namespace: "ns", Name: "p", ServiceAccount: "sa"}}}
	srv.Publish(tb)
	want, err := table.Encode(srv.Current())
	if err != nil {
		t.Fatal(err)
	}
	srv.mu.Lock()
	got := srv.snap.whole().body
	srv.mu.Unlock()
	if !bytes.Equal(got, want) {
		t.Fatalf("served body\n%s\nwant\n%s", got, want)
	}
}

// TestServerConcurrentPublish: publishers in parallel get distinct,
// consecutive versions, each served with the table published under it,
// while readers poll.
func TestServerConcurrentPublish(t *testing.T) {
	s := NewServer(ServerOptions{InitialVersion: 1})
	s.Publish(testTable("start"))
	srv := httptest.NewServer(s)
	defer srv.Close()

	const publishers, each = 4, 25
	var wg sync.WaitGroup
	done := make(chan struct{})
	go func() { // a reader the whole time
		for {
			select {
			case <-done:
				return
			default:
			}
			if cur := s.Current(); cur == nil || cur.Version == 0 {
				t.Error("a reader saw no current table")
				return
			}
			_ = s.Version()
		}
	}()
	var mu sync.Mutex
	names := map[uint64]string{}
	for p := range publishers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				name := fmt.Sprintf("p%d-%d", p, i)
				v := s.Publish(testTable(name))
				mu.Lock()
				if prev, dup := names[v]; dup {
					t.Errorf("version %d given to %s and %s", v, prev, name)
				}
				names[v] = name
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(done)
	if len(names) != publishers*each {
		t.Fatalf("%d distinct versions for %d publishes", len(names), publishers*each)
	}
	for v := uint64(2); v <= publishers*each+1; v++ {
		if _, ok := names[v]; !ok {
			t.Fatalf("version %d missing: versions are not consecutive", v)
		}
	}
	last := uint64(publishers*each + 1)
	if got := s.Current(); got.Version != last || got.HTTP[0].Service.Name != names[last] {
		t.Errorf("current = version %d %q, want %d %q", got.Version, got.HTTP[0].Service.Name, last, names[last])
	}
	resp, body := get(t, srv, "version=0")
	if got, err := table.Decode([]byte(body)); err != nil || resp.Header.Get(HeaderVersion) != strconv.FormatUint(last, 10) || got.HTTP[0].Service.Name != names[last] {
		t.Errorf("served %q (version header %q): %v", body, resp.Header.Get(HeaderVersion), err)
	}
}
