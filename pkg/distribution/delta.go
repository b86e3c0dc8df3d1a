package distribution

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/nodemesh/nodemesh/pkg/table"
)

// A delta carries a table as the changes from a base version the proxy
// holds (docs/distribution-protocol.md#deltas):
//
//	{"schema":1,"version":12,"base":11,"acl":false,
//	 "http":[0,1,{"service":...},3],"tcp":[],"udp":[0],
//	 "baseNodes":true,"pods":[...]}
//
// Each route list is the new table's list in order: an integer stands for
// the route at that position of the base's list, unchanged; an object is a
// route in full. A client that polls with runs=true also reads a pair
// [a,b] (a < b) for the base's routes a to b in turn, so an edit of one
// route among thousands costs a few bytes, not a number per route. "baseNodes" and "basePods" say the list is the base's;
// otherwise "nodes" and "pods" are as in a table (absent when empty), or
// the pods come as their changes since the base, "podsRemoved" and
// "podsAdded" (poddelta.go).
//
// A weight edit of one TrafficSplit among 1,000 services thus costs each
// proxy a few kilobytes to decode instead of the whole table.

// ContentTypeDelta is the Content-Type of a delta answer.
const ContentTypeDelta = "application/vnd.nodemesh.table-delta+json"

// HeaderBase carries a delta's base version.
const HeaderBase = "X-Nodemesh-Table-Base"

// encodeDelta writes cur (version) as a delta against base (baseVersion);
// steps are the pods' steps of the versions after base up to cur. With
// runs, consecutive base positions are written as [first,last] pairs.
func encodeDelta(cur *table.Parts, version uint64, base *table.Parts, baseVersion uint64, steps []podStep, runs bool) []byte {
	b := make([]byte, 0, 1024)
	b = append(b, `{"schema":`...)
	b = strconv.AppendInt(b, int64(cur.Schema), 10)
	b = append(b, `,"version":`...)
	b = strconv.AppendUint(b, version, 10)
	b = append(b, `,"base":`...)
	b = strconv.AppendUint(b, baseVersion, 10)
	b = append(b, `,"acl":`...)
	b = strconv.AppendBool(b, cur.ACL)
	for _, s := range table.Sections {
		index := base.Index(s)
		b = append(append(append(b, `,"`...), s.Name()...), `":[`...)
		items := cur.Items(s)
		for i := 0; i < len(items); i++ {
			if i > 0 {
				b = append(b, ',')
			}
			j, ok := index[items[i]]
			if !ok {
				b = append(b, items[i]...)
				continue
			}
			last := j
			for runs && i+1 < len(items) {
				if k, ok := index[items[i+1]]; !ok || k != last+1 {
					break
				}
				last++
				i++
			}
			if last == j {
				b = strconv.AppendInt(b, int64(j), 10)
				continue
			}
			b = strconv.AppendInt(append(b, '['), int64(j), 10)
			b = strconv.AppendInt(append(b, ','), int64(last), 10)
			b = append(b, ']')
		}
		b = append(b, ']')
	}
	switch {
	case cur.Nodes == base.Nodes:
		b = append(b, `,"baseNodes":true`...)
	case cur.Nodes != "":
		b = append(append(b, `,"nodes":`...), cur.Nodes...)
	}
	if cur.Pods == base.Pods {
		return append(b, `,"basePods":true}`...)
	}
	if removed, added, ok := composeSteps(steps); ok && len(removed)+len(added) > 0 {
		return append(appendPodChanges(b, removed, added), '}')
	}
	if cur.Pods != "" {
		b = append(append(b, `,"pods":`...), cur.Pods...)
	}
	return append(b, '}')
}

// wireDelta is a delta as it is decoded.
type wireDelta struct {
	Schema    int               `json:"schema"`
	Version   uint64            `json:"version"`
	Base      uint64            `json:"base"`
	ACL       bool              `json:"acl"`
	HTTP      []json.RawMessage `json:"http"`
	TCP       []json.RawMessage `json:"tcp"`
	UDP       []json.RawMessage `json:"udp"`
	Nodes     []table.Node      `json:"nodes"`
	BaseNodes bool              `json:"baseNodes"`
	Pods      table.PodList     `json:"pods"`
	BasePods  bool              `json:"basePods"`
	// The pods' changes since the base (poddelta.go).
	PodsRemoved table.PodList `json:"podsRemoved"`
	PodsAdded   table.PodList `json:"podsAdded"`
}

// ApplyDelta rebuilds a table from base and a delta against it, as strictly
// as table.Decode reads a whole table: an unknown field anywhere, trailing
// data, or a reference outside the base's list is an error. The result
// shares the base's unchanged routes and lists, which neither side may
// modify (tables are never modified once published or applied). Client
// uses it; it is exported for tools that poll the protocol themselves.
func ApplyDelta(base *table.Table, body []byte) (*table.Table, error) {
	if len(body) > table.MaxEncodedSize {
		return nil, fmt.Errorf("decode delta: %d bytes exceeds the limit of %d", len(body), table.MaxEncodedSize)
	}
	var d wireDelta
	if err := table.UnmarshalStrict(body, &d); err != nil {
		return nil, fmt.Errorf("decode delta: %w", err)
	}
	if d.Base != base.Version {
		return nil, fmt.Errorf("delta against version %d, but this client holds %d", d.Base, base.Version)
	}
	t := &table.Table{Schema: d.Schema, Version: d.Version, ACL: d.ACL, Nodes: d.Nodes, Pods: d.Pods}
	var err error
	if t.HTTP, err = routes(d.HTTP, base.HTTP, "http"); err != nil {
		return nil, err
	}
	if t.TCP, err = routes(d.TCP, base.TCP, "tcp"); err != nil {
		return nil, err
	}
	if t.UDP, err = routes(d.UDP, base.UDP, "udp"); err != nil {
		return nil, err
	}
	if d.BaseNodes {
		if d.Nodes != nil {
			return nil, errors.New("decode delta: both nodes and baseNodes")
		}
		t.Nodes = base.Nodes
	}
	if d.BasePods {
		if d.Pods != nil {
			return nil, errors.New("decode delta: both pods and basePods")
		}
		t.Pods = base.Pods
	}
	if d.PodsRemoved != nil || d.PodsAdded != nil {
		if d.Pods != nil || d.BasePods {
			return nil, errPodsTwice
		}
		if t.Pods, err = applyPodChanges(base.Pods, d.PodsRemoved, d.PodsAdded); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// routes rebuilds one route list: a number is the base's route at that
// position, a pair [a,b] the base's routes a to b, an object a route in
// full. An empty list is nil, as a table decoded whole has it.
func routes[T any](items []json.RawMessage, base []T, name string) ([]T, error) {
	if len(items) == 0 {
		return nil, nil
	}
	out := make([]T, 0, max(len(items), len(base)))
	for i, raw := range items {
		switch {
		case len(raw) > 0 && raw[0] == '{':
			var r T
			if err := table.UnmarshalStrict(raw, &r); err != nil {
				return nil, fmt.Errorf("decode delta: %s[%d]: %w", name, i, err)
			}
			out = append(out, r)
		case len(raw) > 0 && raw[0] == '[':
			var run []int
			if err := table.UnmarshalStrict(raw, &run); err != nil || len(run) != 2 || run[0] < 0 || run[0] >= run[1] || run[1] >= len(base) {
				return nil, fmt.Errorf("decode delta: %s[%d] is %.40s, not a run [first,last] of positions in the base's %d", name, i, raw, len(base))
			}
			if len(out)+run[1]-run[0]+1 > len(base)+len(items) {
				// Runs only repeat the base's routes: a list cannot be
				// longer than the base plus the items.
				return nil, fmt.Errorf("decode delta: %s is longer than the base's %d routes and the delta's %d items", name, len(base), len(items))
			}
			out = append(out, base[run[0]:run[1]+1]...)
		default:
			j, err := strconv.Atoi(string(raw))
			if err != nil || j < 0 || j >= len(base) {
				return nil, fmt.Errorf("decode delta: %s[%d] is %.40s, not a route nor a position in the base's %d", name, i, raw, len(base))
			}
			out = append(out, base[j])
		}
	}
	return out, nil
}
