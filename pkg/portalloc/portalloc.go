// Package portalloc assigns proxy ports to the TCP and UDP ports of mesh
// services.
//
// The allocation is stored nowhere but in the shadow services (their
// targetPorts), so the controller reads it back on every build and passes it
// in as Existing. Allocation is a pure function of (ranges, wanted, existing):
//   - an existing allocation is kept while its service port is still wanted and
//     its proxy port is inside the range and not claimed by an earlier key;
//   - new keys are served in sorted key order, each taking the lowest free port;
//   - ports of keys no longer wanted are simply not returned (freed);
//   - a key that finds no free port is reported in Exhausted, never dropped
//     silently.
//
// Traefik Mesh handed out ranges of 25 by port index and leaked mappings on
// edits; this keeps every allocation that is still valid and nothing else.
package portalloc

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

// Range is an inclusive range of proxy ports.
type Range struct {
	Min int32 `json:"min"`
	Max int32 `json:"max"`
}

// Default ranges (team contract); see the controller's --tcp-port-range and
// --udp-port-range flags.
var (
	DefaultTCPRange = Range{Min: 10000, Max: 10999}
	DefaultUDPRange = Range{Min: 11000, Max: 11499}
)

// ParseRange parses "10000-10999".
func ParseRange(s string) (Range, error) {
	lo, hi, ok := strings.Cut(strings.TrimSpace(s), "-")
	if !ok {
		return Range{}, fmt.Errorf("port range %q: want MIN-MAX", s)
	}
	min, err1 := strconv.ParseInt(strings.TrimSpace(lo), 10, 32)
	max, err2 := strconv.ParseInt(strings.TrimSpace(hi), 10, 32)
	r := Range{Min: int32(min), Max: int32(max)}
	if err1 != nil || err2 != nil || r.Validate() != nil {
		return Range{}, fmt.Errorf("port range %q: want MIN-MAX with 1 <= MIN <= MAX <= 65535", s)
	}
	return r, nil
}

// String renders "MIN-MAX".
func (r Range) String() string { return fmt.Sprintf("%d-%d", r.Min, r.Max) }

// Validate reports whether r is a usable port range.
func (r Range) Validate() error {
	if r.Min < 1 || r.Max > 65535 || r.Min > r.Max {
		return fmt.Errorf("port range %s: want 1 <= MIN <= MAX <= 65535", r)
	}
	return nil
}

// Contains reports whether port is in r.
func (r Range) Contains(port int32) bool { return port >= r.Min && port <= r.Max }

// Overlaps reports whether r and o share a port.
func (r Range) Overlaps(o Range) bool { return r.Min <= o.Max && o.Min <= r.Max }

// Key is one service port that needs a proxy port.
type Key struct {
	Service  types.NamespacedName `json:"service"`
	Port     int32                `json:"port"`
	Protocol corev1.Protocol      `json:"protocol"`
}

// Compare orders keys by protocol, namespace, name, then port.
func (k Key) Compare(o Key) int {
	return cmp.Or(
		cmp.Compare(k.Protocol, o.Protocol),
		cmp.Compare(k.Service.Namespace, o.Service.Namespace),
		cmp.Compare(k.Service.Name, o.Service.Name),
		cmp.Compare(k.Port, o.Port),
	)
}

// Allocation is a proxy port assigned to a key.
type Allocation struct {
	Key       Key   `json:"key"`
	ProxyPort int32 `json:"proxyPort"`
}

// Ranges gives the proxy port range of each protocol.
type Ranges struct {
	TCP Range
	UDP Range
}

// Result is the outcome of Allocate.
type Result struct {
	// Ports holds the proxy port of every key that got one.
	Ports map[Key]int32
	// Exhausted lists, sorted, the wanted keys for which no port was free.
	Exhausted []Key
}

// Allocate assigns proxy ports to every wanted key; see the package comment
// for the rules. Keys whose protocol is neither TCP nor UDP are ignored; an
// invalid range exhausts every key of its protocol.
func Allocate(ranges Ranges, wanted []Key, existing []Allocation) Result {
	res := Result{Ports: make(map[Key]int32, len(wanted))}
	want := slices.Clone(wanted)
	slices.SortFunc(want, Key.Compare)
	want = slices.Compact(want)

	wantSet := make(map[Key]bool, len(want))
	for _, k := range want {
		wantSet[k] = true
	}
	used := map[corev1.Protocol]map[int32]bool{corev1.ProtocolTCP: {}, corev1.ProtocolUDP: {}}

	// Keep valid existing allocations. Sorting makes duplicates resolve the
	// same way every time: the first key in order keeps a contested port.
	old := slices.Clone(existing)
	slices.SortFunc(old, func(a, b Allocation) int {
		return cmp.Or(a.Key.Compare(b.Key), cmp.Compare(a.ProxyPort, b.ProxyPort))
	})
	for _, a := range old {
		r, ok := ranges.of(a.Key.Protocol)
		if !ok || r.Validate() != nil || !wantSet[a.Key] || !r.Contains(a.ProxyPort) {
			continue
		}
		if _, done := res.Ports[a.Key]; done || used[a.Key.Protocol][a.ProxyPort] {
			continue
		}
		res.Ports[a.Key] = a.ProxyPort
		used[a.Key.Protocol][a.ProxyPort] = true
	}

	// Serve new keys with the lowest free port, scanning forward only: keys
	// come in sorted order and ports are taken in increasing order.
	next := map[corev1.Protocol]int32{corev1.ProtocolTCP: ranges.TCP.Min, corev1.ProtocolUDP: ranges.UDP.Min}
	for _, k := range want {
		r, ok := ranges.of(k.Protocol)
		if !ok {
			continue
		}
		if _, done := res.Ports[k]; done {
			continue
		}
		p := next[k.Protocol]
		for p <= r.Max && used[k.Protocol][p] {
			p++
		}
		if p > r.Max || r.Validate() != nil {
			res.Exhausted = append(res.Exhausted, k)
			next[k.Protocol] = r.Max + 1
			continue
		}
		res.Ports[k] = p
		used[k.Protocol][p] = true
		next[k.Protocol] = p + 1
	}
	return res
}

func (r Ranges) of(p corev1.Protocol) (Range, bool) {
	switch p {
	case corev1.ProtocolTCP:
		return r.TCP, true
	case corev1.ProtocolUDP:
		return r.UDP, true
	}
	return Range{}, false
}
