package distribution

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/nodemesh/nodemesh/pkg/table"
	"github.com/nodemesh/nodemesh/pkg/table/tabletest"
)

// goldenTables are the routing builder's golden tables, in file order.
func goldenTables(t *testing.T) []*table.Table {
	t.Helper()
	var out []*table.Table
	for _, g := range tabletest.Goldens(t) {
		tb, err := table.Decode(g.JSON)
		if err != nil {
			t.Fatalf("%s: %v", g.Name, err)
		}
		out = append(out, tb)
	}
	return out
}

// mutate returns a changed copy of t: a weight edited, a route dropped,
// added or repeated, the ACL flipped, nodes or pods changed or emptied.
// Lists are copied, never modified, as the controller's builders do.
func mutate(r *rand.Rand, t *table.Table, pool []*table.Table) *table.Table {
	c := *t
	c.HTTP, c.TCP, c.UDP = slices.Clone(c.HTTP), slices.Clone(c.TCP), slices.Clone(c.UDP)
	switch r.IntN(9) {
	case 0:
		if len(c.HTTP) > 0 {
			i := r.IntN(len(c.HTTP))
			c.HTTP[i].Backends = slices.Clone(c.HTTP[i].Backends)
			if len(c.HTTP[i].Backends) > 0 {
				c.HTTP[i].Backends[0].Weight = int32(1 + r.IntN(100))
			}
		}
	case 1:
		if len(c.HTTP) > 0 {
			i := r.IntN(len(c.HTTP))
			c.HTTP = slices.Delete(c.HTTP, i, i+1)
		}
	case 2:
		if o := pool[r.IntN(len(pool))]; len(o.HTTP) > 0 {
			c.HTTP = slices.Insert(c.HTTP, r.IntN(len(c.HTTP)+1), o.HTTP[r.IntN(len(o.HTTP))])
		}
	case 3:
		if len(c.HTTP) > 0 {
			c.HTTP = append(c.HTTP, c.HTTP[0]) // a route listed twice
		}
	case 4:
		c.ACL = !c.ACL
	case 5:
		o := pool[r.IntN(len(pool))]
		c.TCP, c.UDP = slices.Clone(o.TCP), slices.Clone(o.UDP)
	case 6:
		c.Nodes = []table.Node{{Name: fmt.Sprintf("node-%d", r.IntN(3)), Zone: "z"}}
	case 7:
		c.Pods = pool[r.IntN(len(pool))].Pods
	case 8:
		c.HTTP, c.TCP, c.UDP, c.Nodes, c.Pods = nil, nil, nil, nil, nil
	}
	return &c
}

// TestDeltaRebuildsTheTable: for random successions of tables, the table a
// delta rebuilds from the decoded base equals the whole new table decoded.
func TestDeltaRebuildsTheTable(t *testing.T) {
	pool := goldenTables(t)
	r := rand.New(rand.NewPCG(1, 2))
	var enc table.Encoder
	for run := range 400 {
		base := pool[r.IntN(len(pool))]
		cur := base
		for range 1 + r.IntN(3) {
			cur = mutate(r, cur, pool)
		}
		bp, err := enc.EncodeParts(base)
		if err != nil {
			t.Fatal(err)
		}
		cp, err := enc.EncodeParts(cur)
		if err != nil {
			t.Fatal(err)
		}
		baseDecoded, err := table.Decode(bp.Bytes(100))
		if err != nil {
			t.Fatal(err)
		}
		want, err := table.Decode(cp.Bytes(101))
		if err != nil {
			t.Fatal(err)
		}
		for _, runs := range []bool{false, true} {
			delta := encodeDelta(cp, 101, bp, 100, []podStep{stepBetween(base.Pods, cur.Pods, bp.Pods == cp.Pods)}, runs)
			got, err := ApplyDelta(baseDecoded, delta)
			if err != nil {
				t.Fatalf("run %d (runs %v): %v\n%s", run, runs, err, delta)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("run %d (runs %v): the delta rebuilt\n%+v\nwant\n%+v\ndelta %s", run, runs, got, want, delta)
			}
		}
	}
}

// TestDeltaIsSmall: one weight edit among many routes sends that route
// and a number for each other one, or with runs two pairs.
func TestDeltaIsSmall(t *testing.T) {
	base := &table.Table{Schema: table.SchemaVersion, Pods: table.PodList{{IP: "10.244.0.1", Namespace: "a", Name: "p", ServiceAccount: "sa"}}}
	for i := range 1000 {
		base.HTTP = append(base.HTTP, testTable(fmt.Sprintf("svc-%04d", i)).HTTP...)
	}
	cur := *base
	cur.HTTP = slices.Clone(base.HTTP)
	cur.HTTP[500].Port = 8080
	var enc table.Encoder
	bp, _ := enc.EncodeParts(base)
	cp, _ := enc.EncodeParts(&cur)
	delta := encodeDelta(cp, 2, bp, 1, nil, false)
	full := cp.Bytes(2)
	if len(delta)*5 > len(full) || !strings.Contains(string(delta), `"port":8080`) || !strings.Contains(string(delta), `"basePods":true`) {
		t.Errorf("delta of %d bytes for a table of %d:\n%.300s", len(delta), len(full), delta)
	}
	withRuns := encodeDelta(cp, 2, bp, 1, nil, true)
	route := len(cp.Items(table.SectionHTTP)[500])
	if !strings.Contains(string(withRuns), `"http":[[0,499],{`) || !strings.Contains(string(withRuns), `},[501,999]]`) || len(withRuns) > route+200 {
		t.Errorf("delta with runs of %d bytes for one route of %d:\n%.300s", len(withRuns), route, withRuns)
	}
}

// TestApplyDeltaRuns: a pair [a,b] stands for the base's routes a to b;
// malformed pairs are refused.
func TestApplyDeltaRuns(t *testing.T) {
	base := &table.Table{Schema: table.SchemaVersion, Version: 5}
	for _, name := range []string{"a", "b", "c"} {
		base.HTTP = append(base.HTTP, testTable(name).HTTP...)
	}
	head := `{"schema":1,"version":6,"base":5,"acl":false,"tcp":[],"udp":[],"basePods":true,"http":`
	got, err := ApplyDelta(base, []byte(head+`[[1,2],0]}`))
	if err != nil {
		t.Fatal(err)
	}
	if want := []table.HTTPRoute{base.HTTP[1], base.HTTP[2], base.HTTP[0]}; !reflect.DeepEqual(got.HTTP, want) {
		t.Errorf("[[1,2],0] rebuilt %+v", got.HTTP)
	}
	for _, tt := range []struct{ name, http string }{
		{"one number", `[[1]]`},
		{"three numbers", `[[0,1,2]]`},
		{"backwards", `[[2,1]]`},
		{"a run of one", `[[1,1]]`},
		{"past the base", `[[1,3]]`},
		{"negative", `[[-1,1]]`},
		{"strings", `[["0","1"]]`},
		{"longer than the base and the items", `[[0,2],[0,2]]`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := ApplyDelta(base, []byte(head+tt.http+`}`)); err == nil || !strings.Contains(err.Error(), "http") {
				t.Errorf("err = %v, want one naming the http list", err)
			}
		})
	}
}

func TestApplyDeltaRejects(t *testing.T) {
	base := testTable("web")
	base.Version = 5
	for _, tt := range []struct{ name, delta, want string }{
		{"another base", `{"schema":1,"version":6,"base":4,"acl":false,"http":[0],"tcp":[],"udp":[]}`, "against version 4"},
		{"a position past the base", `{"schema":1,"version":6,"base":5,"acl":false,"http":[1],"tcp":[],"udp":[]}`, "http[0]"},
		{"a negative position", `{"schema":1,"version":6,"base":5,"acl":false,"http":[-1],"tcp":[],"udp":[]}`, "http[0]"},
		{"a string", `{"schema":1,"version":6,"base":5,"acl":false,"http":["0"],"tcp":[],"udp":[]}`, "http[0]"},
		{"an unknown field", `{"schema":1,"version":6,"base":5,"acl":false,"http":[0],"tcp":[],"udp":[],"extra":1}`, `unknown object member name "extra"`},
		{"an unknown route field", `{"schema":1,"version":6,"base":5,"acl":false,"http":[{"service":{"namespace":"a","name":"b"},"rule":1}],"tcp":[],"udp":[]}`, `unknown object member name "rule"`},
		{"trailing data", `{"schema":1,"version":6,"base":5,"acl":false,"http":[0],"tcp":[],"udp":[]} {}`, "after top-level value"},
		{"pods twice", `{"schema":1,"version":6,"base":5,"acl":false,"http":[0],"tcp":[],"udp":[],"pods":[],"basePods":true}`, "both pods"},
		{"a field twice", `{"schema":1,"version":6,"base":5,"base":5,"acl":false,"http":[0],"tcp":[],"udp":[]}`, `duplicate object member name "base"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ApplyDelta(base, []byte(tt.delta))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

// TestServerSendsDeltaWhenAsked: a poll that offers a version of the
// history gets a delta against it; without delta=true, with version 0 or
// with a version older than the history it gets the whole table.
func TestServerSendsDeltaWhenAsked(t *testing.T) {
	s := NewServer(ServerOptions{InitialVersion: 1})
	for i := range historySize + 2 {
		s.Publish(testTable(fmt.Sprintf("web-%d", i)))
	}
	cur := s.Version() // historySize+2; versions 3.. are kept
	srv := httptest.NewServer(s)
	defer srv.Close()
	for _, tt := range []struct {
		query string
		delta bool
	}{
		{fmt.Sprintf("version=%d&delta=true", cur-1), true},
		{fmt.Sprintf("version=%d&delta=true", cur-historySize+1), true},
		{fmt.Sprintf("version=%d&delta=true", cur-historySize), false},
		{fmt.Sprintf("version=%d", cur-1), false},
		{"version=0&delta=true", false},
		{fmt.Sprintf("version=%d&delta=false", cur-1), false},
	} {
		resp, body := get(t, srv, tt.query)
		isDelta := resp.Header.Get("Content-Type") == ContentTypeDelta
		if resp.StatusCode != 200 || isDelta != tt.delta || (resp.Header.Get(HeaderBase) != "") != tt.delta {
			t.Errorf("%s: %d %s base %q, want delta %v", tt.query, resp.StatusCode, resp.Header.Get("Content-Type"), resp.Header.Get(HeaderBase), tt.delta)
		}
		if isDelta && !strings.Contains(body, `"base":`+resp.Header.Get(HeaderBase)) {
			t.Errorf("%s: body %s", tt.query, body)
		}
	}
	if resp, _ := get(t, srv, "version=1&delta=maybe"); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("delta=maybe: %d", resp.StatusCode)
	}
}

// TestServerWritesRunsOnlyWhenAsked: a client that does not say runs=true
// (an older proxy) gets a number per unchanged route, one that does gets
// pairs; both deltas of the same version are kept apart.
func TestServerWritesRunsOnlyWhenAsked(t *testing.T) {
	s := NewServer(ServerOptions{InitialVersion: 1})
	tbl := &table.Table{Schema: table.SchemaVersion}
	for i := range 10 {
		tbl.HTTP = append(tbl.HTTP, testTable(fmt.Sprintf("web-%d", i)).HTTP...)
	}
	s.Publish(tbl)
	base := s.Version()
	edited := *tbl
	edited.HTTP = slices.Clone(tbl.HTTP)
	edited.HTTP[9].Port = 8080
	s.Publish(&edited)
	srv := httptest.NewServer(s)
	defer srv.Close()
	for i := range 2 { // twice: the second answers come from the kept deltas
		_, plain := get(t, srv, fmt.Sprintf("version=%d&delta=true", base))
		_, runs := get(t, srv, fmt.Sprintf("version=%d&delta=true&runs=true", base))
		if !strings.Contains(plain, `"http":[0,1,2,3,4,5,6,7,8,{`) {
			t.Errorf("round %d, without runs=true: %.200s", i, plain)
		}
		if !strings.Contains(runs, `"http":[[0,8],{`) {
			t.Errorf("round %d, with runs=true: %.200s", i, runs)
		}
	}
	if resp, _ := get(t, srv, fmt.Sprintf("version=%d&delta=true&runs=perhaps", base)); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("runs=perhaps: %d", resp.StatusCode)
	}
}

// deltaCounter counts the delta answers a client receives.
type deltaCounter struct {
	mu     sync.Mutex
	deltas int
}

func (d *deltaCounter) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(r)
	if err == nil && resp.Header.Get(HeaderBase) != "" {
		d.mu.Lock()
		d.deltas++
		d.mu.Unlock()
	}
	return resp, err
}

// TestClientAppliesDeltas: a client that follows a stream of versions gets
// deltas after the first table, and each table it applies equals the one
// the server published.
func TestClientAppliesDeltas(t *testing.T) {
	pool := goldenTables(t)
	s := NewServer(ServerOptions{InitialVersion: 1})
	s.Publish(pool[0])
	srv := httptest.NewServer(s)
	defer srv.Close()
	counter := &deltaCounter{}
	var mu sync.Mutex
	applied := map[uint64]*table.Table{}
	c, err := NewClient(ClientOptions{URL: srv.URL, Node: "n", HTTPClient: &http.Client{Transport: counter}, Backoff: fastBackoff})
	if err != nil {
		t.Fatal(err)
	}
	stop := runClient(t, c, func(tb *table.Table) error {
		mu.Lock()
		defer mu.Unlock()
		applied[tb.Version] = tb
		return nil
	})
	defer stop()
	r := rand.New(rand.NewPCG(3, 4))
	published := map[uint64]*table.Table{}
	cur := pool[0]
	for range 30 {
		waitFor(t, func() bool { return c.Status().Applied == s.Version() })
		cur = mutate(r, cur, pool)
		v := s.Publish(cur)
		published[v] = s.Current()
	}
	waitFor(t, func() bool { return c.Status().Applied == s.Version() })
	mu.Lock()
	defer mu.Unlock()
	for v, want := range published {
		got := applied[v]
		wantDecoded, _ := table.Decode(mustEncode(t, want))
		if got == nil || !reflect.DeepEqual(got, wantDecoded) {
			t.Errorf("version %d: applied %+v, want %+v", v, got, wantDecoded)
		}
	}
	counter.mu.Lock()
	defer counter.mu.Unlock()
	if counter.deltas == 0 {
		t.Error("the client never received a delta")
	}
}

func mustEncode(t *testing.T, tb *table.Table) []byte {
	t.Helper()
	b, err := table.Encode(tb)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
