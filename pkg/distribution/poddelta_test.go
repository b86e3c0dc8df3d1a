package distribution

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/nodemesh/nodemesh/pkg/table"
)

// churn returns pods with a few removed, a few added and one moved to
// another node: what pods starting and stopping do to a table.
func churn(r *rand.Rand, pods table.PodList, next *int) table.PodList {
	out := slices.Clone(pods)
	for range r.IntN(4) {
		if len(out) > 1 {
			i := r.IntN(len(out))
			out = append(out[:i], out[i+1:]...)
		}
	}
	for range r.IntN(5) {
		*next++
		n := *next
		p := table.Pod{IP: fmt.Sprintf("10.244.%d.%d", n/250, n%250), Namespace: fmt.Sprintf("ns-%d", n%3), Name: fmt.Sprintf("pod-%d", n), ServiceAccount: "default", Node: fmt.Sprintf("node-%d", n%4)}
		if n%2 == 0 {
			p.Workload = "Deployment/web"
		}
		if n%7 == 0 && len(out) > 0 { // a pod sharing another's IP
			p.IP = out[r.IntN(len(out))].IP
		}
		out = append(out, p)
	}
	if len(out) > 0 && r.IntN(2) == 0 {
		i := r.IntN(len(out))
		out[i].Node += "-moved"
	}
	return out
}

// TestDeltaCarriesPodChanges: a server publishes tables whose pods churn;
// for every version in its history as the base, the delta rebuilds the
// table the whole encoding gives, and carries the pods as changes unless a
// step was not kept.
func TestDeltaCarriesPodChanges(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	next := 0
	var pods table.PodList
	for range 200 {
		pods = churn(r, pods, &next)
	}
	s := NewServer(ServerOptions{InitialVersion: 1})
	decoded := map[uint64]*table.Table{}
	changes := 0
	for round := range 60 {
		tbl := testTable("web")
		if round != 30 { // round 30 publishes no pods at all: a step not kept
			pods = churn(r, pods, &next)
			tbl.Pods = pods
		}
		v := s.Publish(tbl)
		s.mu.Lock()
		snap := s.snap
		s.mu.Unlock()
		whole, err := table.Decode(snap.whole().body)
		if err != nil {
			t.Fatal(err)
		}
		decoded[v] = whole
		for b := v - min(v-1, historySize-1); b < v; b++ {
			d := s.delta(snap, pollQuery{delta: true, version: b})
			if d == nil {
				t.Fatalf("version %d: no delta against %d", v, b)
			}
			got, err := ApplyDelta(decoded[b], d.body)
			if err != nil {
				t.Fatalf("version %d against %d: %v\n%.400s", v, b, err, d.body)
			}
			if !reflect.DeepEqual(got, whole) {
				t.Fatalf("version %d against %d: the delta rebuilt pods\n%v\nwant\n%v", v, b, got.Pods, whole.Pods)
			}
			body := string(d.body)
			acrossEmpty := b < 32 && v >= 30 // across the versions without pods
			if strings.Contains(body, `"podsAdded"`) || strings.Contains(body, `"podsRemoved"`) {
				changes++
			} else if !acrossEmpty && !strings.Contains(body, `"basePods":true`) {
				t.Fatalf("version %d against %d: pods sent whole though every step was kept: %.300s", v, b, body)
			}
		}
	}
	if changes == 0 {
		t.Fatal("no delta carried pod changes")
	}
}

// TestDeltaPodChangesAreSmall: five new pods among 15,000 cost the delta
// about what they weigh, not the list.
func TestDeltaPodChangesAreSmall(t *testing.T) {
	base := testTable("web")
	for i := range 15000 {
		base.Pods = append(base.Pods, table.Pod{IP: fmt.Sprintf("10.%d.%d.%d", 100+i/62500, i/250%250, i%250), Namespace: "bench", Name: fmt.Sprintf("pod-%05d", i), ServiceAccount: "default", Node: fmt.Sprintf("node-%d", i%10)})
	}
	cur := *base
	cur.Pods = slices.Clone(base.Pods)
	for i := range 5 {
		cur.Pods = append(cur.Pods, table.Pod{IP: fmt.Sprintf("10.200.0.%d", i), Namespace: "bench", Name: fmt.Sprintf("new-%d", i), ServiceAccount: "default", Node: "node-1"})
	}
	s := NewServer(ServerOptions{InitialVersion: 1})
	s.Publish(base)
	s.Publish(&cur)
	d := s.delta(s.snap, pollQuery{delta: true, version: 1})
	whole := s.snap.whole().body
	if d == nil || len(d.body) > 2000 || !strings.Contains(string(d.body), `"podsAdded"`) {
		t.Fatalf("delta of %d bytes for a table of %d: %.300s", len(d.body), len(whole), d.body)
	}
}

func TestApplyDeltaRejectsBadPodChanges(t *testing.T) {
	base := testTable("web")
	base.Version = 1
	base.Pods = table.PodList{{IP: "10.244.0.1", Namespace: "a", Name: "p", ServiceAccount: "sa", Workload: "Pod/p"}}
	for name, delta := range map[string]string{
		"removed pod not in the base": `{"schema":1,"version":2,"base":1,"acl":false,"http":[0],"tcp":[],"udp":[],"podsRemoved":[{"namespace":"a","serviceAccount":"sa","ips":["10.244.0.9"],"names":["q"]}]}`,
		"pods whole and as changes":   `{"schema":1,"version":2,"base":1,"acl":false,"http":[0],"tcp":[],"udp":[],"pods":[],"podsAdded":[{"namespace":"a","serviceAccount":"sa","ips":["10.244.0.9"],"names":["q"]}]}`,
		"base pods and changes":       `{"schema":1,"version":2,"base":1,"acl":false,"http":[0],"tcp":[],"udp":[],"basePods":true,"podsAdded":[{"namespace":"a","serviceAccount":"sa","ips":["10.244.0.9"],"names":["q"]}]}`,
		"bad added pods":              `{"schema":1,"version":2,"base":1,"acl":false,"http":[0],"tcp":[],"udp":[],"podsAdded":[{"namespace":"a","ips":["10.244.0.9"],"names":[]}]}`,
	} {
		if _, err := ApplyDelta(base, []byte(delta)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestDeltaAnswerJoinsNoWholeBody: answering a poll with a delta leaves the
// whole table unjoined; a poll that reads it whole joins it.
func TestDeltaAnswerJoinsNoWholeBody(t *testing.T) {
	s := NewServer(ServerOptions{InitialVersion: 1})
	s.Publish(testTable("web"))
	s.Publish(testTable("api"))
	get := func(query string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, Path+"?"+query, nil))
		return rec
	}
	if rec := get("version=1&delta=true&wait=1s"); rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != ContentTypeDelta {
		t.Fatalf("delta poll: %d %q", rec.Code, rec.Header().Get("Content-Type"))
	}
	if s.snap.full.body != nil {
		t.Error("a delta answer joined the whole table")
	}
	if rec := get("version=0"); rec.Code != http.StatusOK || s.snap.full.body == nil {
		t.Errorf("whole poll: %d, body joined %v", rec.Code, s.snap.full.body != nil)
	}
}
