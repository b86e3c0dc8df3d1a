package portset

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/nodemesh/nodemesh/pkg/proxy/pick"
	"github.com/nodemesh/nodemesh/pkg/table"
)

// fakeListener records what the Set does to it; Serve blocks until Close.
type fakeListener struct {
	port   int32
	route  atomic.Pointer[string]
	swaps  atomic.Int32
	closed chan struct{}
	once   sync.Once
}

func (l *fakeListener) Swap(r string) { l.route.Store(&r); l.swaps.Add(1) }
func (l *fakeListener) Serve()        { <-l.closed }
func (l *fakeListener) Close()        { l.once.Do(func() { close(l.closed) }) }

func (l *fakeListener) isClosed() bool {
	select {
	case <-l.closed:
		return true
	default:
		return false
	}
}

// fakeOpener opens fake listeners, failing on the ports in fail.
type fakeOpener struct {
	mu     sync.Mutex
	fail   map[int32]bool
	opened []*fakeListener
}

func (o *fakeOpener) listen(port int32) (*fakeListener, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.fail[port] {
		return nil, errors.New("address already in use")
	}
	l := &fakeListener{port: port, closed: make(chan struct{})}
	o.opened = append(o.opened, l)
	return l, nil
}

func describe(r string) string { return r }

func TestApplyOpensKeepsAndClosesByPort(t *testing.T) {
	o := &fakeOpener{}
	s := New[string]("test proxy", o.listen)
	defer s.Close()
	if err := s.Apply(map[int32]string{1: "a", 2: "b"}, describe); err != nil {
		t.Fatal(err)
	}
	first, _ := s.Get(1)
	if err := s.Apply(map[int32]string{1: "a2", 3: "c"}, describe); err != nil {
		t.Fatal(err)
	}
	if got := s.Ports(); !slices.Equal(got, []int32{1, 3}) {
		t.Errorf("ports %v, want [1 3]", got)
	}
	kept, _ := s.Get(1)
	if kept != first || *kept.route.Load() != "a2" || kept.swaps.Load() != 2 {
		t.Errorf("port 1: reopened %v, route %q, swaps %d; want the same listener with the new route", kept != first, *kept.route.Load(), kept.swaps.Load())
	}
	if len(o.opened) != 3 || !o.opened[1].isClosed() || o.opened[2].isClosed() {
		t.Errorf("opened %d listeners; port 2 closed %v, port 3 closed %v", len(o.opened), o.opened[1].isClosed(), o.opened[2].isClosed())
	}
}

func TestApplyIsAllOrNothing(t *testing.T) {
	o := &fakeOpener{fail: map[int32]bool{5: true}}
	s := New[string]("test proxy", o.listen)
	defer s.Close()
	if err := s.Apply(map[int32]string{1: "a"}, describe); err != nil {
		t.Fatal(err)
	}
	err := s.Apply(map[int32]string{2: "b", 5: "shop/db", 7: "c"}, describe)
	if want := "test proxy port 5 (shop/db): address already in use"; err == nil || err.Error() != want {
		t.Fatalf("Apply = %v, want %q", err, want)
	}
	if got := s.Ports(); !slices.Equal(got, []int32{1}) {
		t.Errorf("ports after a failed Apply %v, want the old [1]", got)
	}
	l1, _ := s.Get(1)
	if l1.isClosed() || *l1.route.Load() != "a" {
		t.Errorf("the old listener was touched: closed %v, route %q", l1.isClosed(), *l1.route.Load())
	}
	for _, l := range o.opened[1:] {
		if !l.isClosed() {
			t.Errorf("port %d, opened by the failed Apply, left open", l.port)
		}
	}
}

func TestCloseWaitsAndRefusesApply(t *testing.T) {
	o := &fakeOpener{}
	s := New[string]("test proxy", o.listen)
	if err := s.Apply(map[int32]string{1: "a"}, describe); err != nil {
		t.Fatal(err)
	}
	l, _ := s.Get(1)
	var finished atomic.Bool
	s.Go(func() {
		<-l.closed
		finished.Store(true)
	})
	s.Close()
	if !finished.Load() || !l.isClosed() || len(s.Ports()) != 0 {
		t.Errorf("Close returned before the listener's goroutines ended, or left ports %v", s.Ports())
	}
	if err := s.Apply(map[int32]string{1: "a"}, describe); !errors.Is(err, ErrClosed) {
		t.Errorf("Apply after Close = %v, want ErrClosed", err)
	}
}

func ExampleSet_Apply() {
	o := &fakeOpener{}
	s := New[string]("tcp proxy", o.listen)
	defer s.Close()
	_ = s.Apply(map[int32]string{10001: "shop/db", 10000: "shop/web"}, describe)
	fmt.Println(s.Ports())
	// Output: [10000 10001]
}

func TestRoutesRefusesBadAndSharedPorts(t *testing.T) {
	sr := func(port int32, name string) table.StreamRoute {
		return table.StreamRoute{Service: table.ServiceRef{Namespace: "shop", Name: name}, ProxyPort: port}
	}
	build := func(sr *table.StreamRoute) (string, error) {
		if sr.Service.Name == "bad" {
			return "", errors.New("no backends")
		}
		return sr.Service.Name, nil
	}
	got, err := Routes("tcp proxy", []table.StreamRoute{sr(10000, "db"), sr(10001, "cache")}, build)
	if err != nil || len(got) != 2 || got[10000] != "db" || got[10001] != "cache" {
		t.Errorf("Routes = %v, %v", got, err)
	}
	for _, tc := range []struct {
		streams []table.StreamRoute
		want    string
	}{
		{[]table.StreamRoute{sr(0, "db")}, "tcp proxy port 0 (shop/db): out of range"},
		{[]table.StreamRoute{sr(70000, "db")}, "tcp proxy port 70000 (shop/db): out of range"},
		{[]table.StreamRoute{sr(10000, "db"), sr(10000, "cache")}, "tcp proxy port 10000: used by both shop/db and shop/cache"},
		{[]table.StreamRoute{sr(10000, "bad")}, "tcp proxy port 10000 (shop/bad): no backends"},
	} {
		if _, err := Routes("tcp proxy", tc.streams, build); err == nil || err.Error() != tc.want {
			t.Errorf("Routes(%v) = %v, want %q", tc.streams, err, tc.want)
		}
	}
}

func TestApplyStreamsBuildsAppliesThenCallsApplied(t *testing.T) {
	sr := func(port int32, name string, weight int32) table.StreamRoute {
		return table.StreamRoute{Service: table.ServiceRef{Namespace: "shop", Name: name}, ProxyPort: port, Backends: []table.Backend{{
			Service: table.ServiceRef{Namespace: "shop", Name: name}, Weight: weight,
			Endpoints: []table.Endpoint{{Address: "10.0.0.1:80"}},
		}}}
	}
	build := func(sr *table.StreamRoute, set *pick.Set) (string, error) {
		if set == nil {
			return "", errors.New("no pick.Set")
		}
		return sr.Service.Name, nil
	}
	o := &fakeOpener{fail: map[int32]bool{10002: true}}
	s := New[string]("tcp proxy", o.listen)
	defer s.Close()
	applied := 0
	if err := s.ApplyStreams([]table.StreamRoute{sr(10000, "db", 1), sr(10001, "cache", 1)}, build, func() { applied++ }); err != nil {
		t.Fatal(err)
	}
	if got := s.Ports(); !slices.Equal(got, []int32{10000, 10001}) || applied != 1 {
		t.Fatalf("ports %v, applied %d times; want [10000 10001], once", got, applied)
	}
	for _, tc := range []struct {
		streams []table.StreamRoute
		want    string
	}{
		// pick.New refuses the backends: named like a build error.
		{[]table.StreamRoute{sr(10000, "db", -1)}, "tcp proxy port 10000 (shop/db): backend shop/db: negative weight -1"},
		// A listener fails to open: named with the port's service.
		{[]table.StreamRoute{sr(10000, "db", 1), sr(10002, "web", 1)}, "tcp proxy port 10002 (shop/web): address already in use"},
	} {
		err := s.ApplyStreams(tc.streams, build, func() { applied++ })
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ApplyStreams(%v) = %v, want it to contain %q", tc.streams, err, tc.want)
		}
	}
	if got := s.Ports(); !slices.Equal(got, []int32{10000, 10001}) || applied != 1 {
		t.Errorf("after refused tables: ports %v, applied %d times; want [10000 10001], once", got, applied)
	}
	if err := s.ApplyStreams(nil, build, nil); err != nil || len(s.Ports()) != 0 {
		t.Errorf("ApplyStreams(nil) = %v, ports %v; want nil, none", err, s.Ports())
	}
}
