package distribution

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/nodemesh/nodemesh/pkg/table"
)

// recorder is an apply func that remembers what it was given.
type recorder struct {
	mu      sync.Mutex
	applied []uint64
	reject  map[uint64]bool
	calls   int
}

func (r *recorder) apply(t *table.Table) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls++
	if t == nil {
		return errors.New("nil table")
	}
	if r.reject[t.Version] {
		return errors.New("rejected on purpose")
	}
	r.applied = append(r.applied, t.Version)
	return nil
}

func (r *recorder) last() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.applied) == 0 {
		return 0
	}
	return r.applied[len(r.applied)-1]
}

func (r *recorder) callCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls
}

var fastBackoff = wait.Backoff{Duration: 20 * time.Millisecond, Factor: 2, Steps: 1 << 30, Cap: 200 * time.Millisecond}

func startClient(t *testing.T, url string, apply func(*table.Table) error) (*Client, func()) {
	t.Helper()
	c, err := NewClient(ClientOptions{URL: url, Node: "node-1", Wait: 200 * time.Millisecond, Backoff: fastBackoff})
	if err != nil {
		t.Fatal(err)
	}
	return c, runClient(t, c, apply)
}

// runClient runs c until the returned stop is called.
func runClient(t *testing.T, c *Client, apply func(*table.Table) error) func() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = c.Run(ctx, apply); close(done) }()
	return func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("Run did not return after cancel")
		}
	}
}

func TestClientAppliesAndReportsToServer(t *testing.T) {
	s := NewServer(ServerOptions{InitialVersion: 1})
	s.Publish(testTable("web"))
	srv := httptest.NewServer(s)
	defer srv.Close()
	rec := &recorder{}
	c, stop := startClient(t, srv.URL, rec.apply)
	defer stop()

	waitFor(t, func() bool { return rec.last() == 1 })
	s.Publish(testTable("api"))
	waitFor(t, func() bool { return rec.last() == 2 })
	waitFor(t, func() bool {
		n := s.Nodes()
		return len(n) == 1 && n[0].Node == "node-1" && n[0].AppliedVersion == 2 && n[0].Ready
	})
	if st := c.Status(); st.Applied != 2 || !st.Ready || !st.Connected || st.LastError != "" {
		t.Fatalf("status %+v", st)
	}
}

// flaky serves the real Server, or 503 while down is set, counting requests.
type flaky struct {
	s        *Server
	down     atomic.Bool
	requests atomic.Int64
}

func (f *flaky) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.requests.Add(1)
	if f.down.Load() {
		http.Error(w, "controller restarting", http.StatusServiceUnavailable)
		return
	}
	f.s.ServeHTTP(w, r)
}

func TestClientKeepsLastGoodTableAndBacksOff(t *testing.T) {
	s := NewServer(ServerOptions{InitialVersion: 1})
	s.Publish(testTable("web"))
	f := &flaky{s: s}
	srv := httptest.NewServer(f)
	defer srv.Close()
	rec := &recorder{}
	c, stop := startClient(t, srv.URL, rec.apply)
	defer stop()
	waitFor(t, func() bool { return rec.last() == 1 })

	f.down.Store(true)
	srv.CloseClientConnections() // the held poll fails; retries get 503
	waitFor(t, func() bool { return c.Status().LastError != "" })
	s.Publish(testTable("api"))
	before := f.requests.Load()
	time.Sleep(500 * time.Millisecond)
	// 20, 40, 80, 160, 200, 200 ms ...: a handful of retries in 0.5 s, where a
	// loop without backoff would send thousands.
	if n := f.requests.Load() - before; n > 8 {
		t.Fatalf("%d retries in 0.5s: no backoff", n)
	}
	if st := c.Status(); st.Connected || st.Applied != 1 || !st.Ready {
		t.Fatalf("status while down: %+v", st)
	}
	if rec.callCount() != 1 {
		t.Fatalf("apply called %d times while the server was down", rec.callCount())
	}

	f.down.Store(false)
	waitFor(t, func() bool { return rec.last() == 2 })
	if st := c.Status(); !st.Connected || st.LastError != "" {
		t.Fatalf("status after reconnect: %+v", st)
	}
}

func TestClientSurvivesServerGoingAway(t *testing.T) {
	s := NewServer(ServerOptions{InitialVersion: 1})
	s.Publish(testTable("web"))
	srv := httptest.NewServer(s)
	addr := srv.Listener.Addr().String()
	rec := &recorder{}
	c, stop := startClient(t, srv.URL, rec.apply)
	defer stop()
	waitFor(t, func() bool { return rec.last() == 1 })

	srv.CloseClientConnections()
	srv.Close() // connection refused from now on
	waitFor(t, func() bool { return !c.Status().Connected })

	// The controller comes back on the same address with a newer table.
	s.Publish(testTable("api"))
	srv2 := httptest.NewUnstartedServer(s)
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("address %s not reusable: %v", addr, err)
	}
	srv2.Listener = l
	srv2.Start()
	defer srv2.Close()
	waitFor(t, func() bool { return rec.last() == 2 })
}

func TestClientRetriesRejectedTableUntilReplaced(t *testing.T) {
	s := NewServer(ServerOptions{InitialVersion: 1})
	s.Publish(testTable("web"))
	srv := httptest.NewServer(s)
	defer srv.Close()
	rec := &recorder{reject: map[uint64]bool{2: true}}
	c, stop := startClient(t, srv.URL, rec.apply)
	defer stop()
	waitFor(t, func() bool { return rec.last() == 1 })

	s.Publish(testTable("bad"))                             // version 2, rejected
	waitFor(t, func() bool { return rec.callCount() >= 3 }) // offered again after backoff
	if st := c.Status(); st.Applied != 1 || st.LastError == "" {
		t.Fatalf("status after a rejection: %+v", st)
	}
	if n := s.Nodes(); len(n) != 1 || n[0].AppliedVersion != 1 {
		t.Fatalf("server sees %+v, want applied 1", n)
	}
	s.Publish(testTable("good")) // version 3
	waitFor(t, func() bool { return rec.last() == 3 })
}

func TestNewClientURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"http://ctl:9000", "http://ctl:9000/api/table"},
		{"http://ctl:9000/", "http://ctl:9000/api/table"},
		{"http://ctl:9000/custom/watch", "http://ctl:9000/custom/watch"},
	}
	for _, tt := range tests {
		c, err := NewClient(ClientOptions{URL: tt.in})
		if err != nil || c.url.String() != tt.want {
			t.Errorf("NewClient(%q) url = %v, %v; want %s", tt.in, c, err, tt.want)
		}
	}
	for _, bad := range []string{"", "ctl:9000", "://x"} {
		if _, err := NewClient(ClientOptions{URL: bad}); err == nil {
			t.Errorf("NewClient(%q) accepted", bad)
		}
	}
}
