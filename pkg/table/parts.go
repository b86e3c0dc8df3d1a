package table

import (
	"encoding/json"
	"slices"
	"strconv"
	"sync"
)

// Parts is a table's encoding cut at its list elements: each HTTP, TCP and
// UDP route is encoded on its own, and the node and pod lists as a whole.
// Bytes joins them into exactly Encode's bytes. The distribution server
// keeps the parts of recent versions to send a proxy only the routes that
// changed since the version it holds (docs/distribution-protocol.md).
//
// Parts are strings so that an index of them costs no copy, and so that an
// Encoder can hand successive versions the very same string for a route
// that did not change: the server's history of versions then holds each
// unchanged route once. A Parts must not be modified once made.
type Parts struct {
	Schema int
	ACL    bool
	// HTTP, TCP and UDP hold the encoding of each route, in table order.
	HTTP, TCP, UDP []string
	// Nodes and Pods hold the encoding of the whole list, "" when empty.
	Nodes, Pods string

	indexOnce sync.Once
	index     [3]map[string]int
}

// Section names one of the route lists of Parts.
type Section int

// The route lists, in encoding order.
const (
	SectionHTTP Section = iota
	SectionTCP
	SectionUDP
)

// Sections lists every Section.
var Sections = []Section{SectionHTTP, SectionTCP, SectionUDP}

// Name is the section's JSON field name.
func (s Section) Name() string { return [...]string{"http", "tcp", "udp"}[s] }

// Items returns the encoded routes of section s.
func (p *Parts) Items(s Section) []string { return [...][]string{p.HTTP, p.TCP, p.UDP}[s] }

// Index returns, for section s, each encoded route's position (the first,
// for a route listed twice). It is built once, on first use.
func (p *Parts) Index(s Section) map[string]int {
	p.indexOnce.Do(func() {
		for _, sec := range Sections {
			items := p.Items(sec)
			m := make(map[string]int, len(items))
			for i := len(items) - 1; i >= 0; i-- {
				m[items[i]] = i
			}
			p.index[sec] = m
		}
	})
	return p.index[s]
}

// Bytes returns the table's encoding with the given version: the same bytes
// as Encode of the table the parts were made from, with Version set.
func (p *Parts) Bytes(version uint64) []byte {
	n := 64 + len(p.Nodes) + len(p.Pods)
	for _, s := range Sections {
		for _, it := range p.Items(s) {
			n += len(it) + 1
		}
	}
	b := make([]byte, 0, n)
	b = append(b, `{"schema":`...)
	b = strconv.AppendInt(b, int64(p.Schema), 10)
	b = append(b, `,"version":`...)
	b = strconv.AppendUint(b, version, 10)
	b = append(b, `,"acl":`...)
	b = strconv.AppendBool(b, p.ACL)
	for _, s := range Sections {
		if items := p.Items(s); len(items) > 0 { // omitempty
			b = AppendList(append(append(append(b, `,"`...), s.Name()...), `":`...), items)
		}
	}
	if p.Nodes != "" {
		b = append(append(b, `,"nodes":`...), p.Nodes...)
	}
	if p.Pods != "" {
		b = append(append(b, `,"pods":`...), p.Pods...)
	}
	return append(b, '}')
}

// AppendList appends a JSON array of encoded values.
func AppendList(b []byte, items []string) []byte {
	b = append(b, '[')
	for i, it := range items {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, it...)
	}
	return append(b, ']')
}

// Equal reports whether p and o encode the same table, ignoring versions.
func (p *Parts) Equal(o *Parts) bool {
	if p.Schema != o.Schema || p.ACL != o.ACL || p.Nodes != o.Nodes || p.Pods != o.Pods {
		return false
	}
	for _, s := range Sections {
		if !slices.Equal(p.Items(s), o.Items(s)) {
			return false
		}
	}
	return true
}

// routeKey names a route within its list: the service port it serves.
type routeKey struct {
	service ServiceRef
	port    int32
}

// encodeItems encodes each element of list. An element equal (deeply, as
// equal says) to the element of prevList with the same key (the previous
// table's route for that service port) takes prevList's encoding without
// being encoded again: equal values encode to equal bytes, and comparing
// costs a fraction of encoding (most routes of a table are unchanged from
// one version to the next). Otherwise an encoding prev already holds is
// handed back as prev's string.
func encodeItems[T any](list []T, key func(*T) routeKey, equal func(*T, *T) bool, prevList []T, prevItems []string, prev map[string]int) ([]string, error) {
	byKey := make(map[routeKey]int, len(prevList))
	for j := range prevList {
		byKey[key(&prevList[j])] = j
	}
	out := make([]string, len(list))
	for i := range list {
		if j, ok := byKey[key(&list[i])]; ok && equal(&prevList[j], &list[i]) {
			out[i] = prevItems[j]
			continue
		}
		b, err := json.Marshal(&list[i])
		if err != nil {
			return nil, err
		}
		if j, ok := prev[string(b)]; ok {
			out[i] = prevItems[j]
		} else {
			out[i] = string(b)
		}
	}
	return out, nil
}

func httpKey(r *HTTPRoute) routeKey     { return routeKey{r.Service, r.Port} }
func streamKey(r *StreamRoute) routeKey { return routeKey{r.Service, r.Port} }
