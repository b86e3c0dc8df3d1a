package table

import (
	"encoding/json"
	"sync"
)

// Encoder encodes successive tables to the same bytes as Encode, cut into
// Parts, and reuses what did not change since the previous table:
//   - the encoding of the last pod list it saw, for a table whose Pods is the
//     very same slice (not merely equal). The pod list is a large part of a
//     table and changes far less often than the routes; the controller's
//     builders hand successive tables the same slice while the pods are
//     unchanged. The caller must not modify a slice it has passed, as with
//     every published table.
//   - the previous table's string for each route whose encoding is
//     unchanged, so that versions kept side by side share them.
//
// Safe for concurrent use.
type Encoder struct {
	mu      sync.Mutex
	pods    PodList
	encoded string // the encoding of pods
	prev    *Parts
}

// Encode returns the canonical JSON encoding of t.
func (e *Encoder) Encode(t *Table) ([]byte, error) {
	p, err := e.EncodeParts(t)
	if err != nil {
		return nil, err
	}
	return p.Bytes(t.Version), nil
}

// EncodeParts returns t's encoding cut into Parts.
func (e *Encoder) EncodeParts(t *Table) (*Parts, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	prev := e.prev
	if prev == nil {
		prev = &Parts{}
	}
	p := &Parts{Schema: t.Schema, ACL: t.ACL}
	var err error
	if p.HTTP, err = encodeItems(t.HTTP, prev.Index(SectionHTTP), prev.HTTP); err != nil {
		return nil, err
	}
	if p.TCP, err = encodeItems(t.TCP, prev.Index(SectionTCP), prev.TCP); err != nil {
		return nil, err
	}
	if p.UDP, err = encodeItems(t.UDP, prev.Index(SectionUDP), prev.UDP); err != nil {
		return nil, err
	}
	if len(t.Nodes) > 0 {
		b, err := json.Marshal(t.Nodes)
		if err != nil {
			return nil, err
		}
		if p.Nodes = string(b); p.Nodes == prev.Nodes {
			p.Nodes = prev.Nodes
		}
	}
	if len(t.Pods) > 0 {
		if !sameSlice(e.pods, t.Pods) {
			b, err := json.Marshal(t.Pods)
			if err != nil {
				return nil, err
			}
			e.pods, e.encoded = t.Pods, string(b)
		}
		p.Pods = e.encoded
	}
	e.prev = p
	return p, nil
}

// sameSlice reports whether a and b are the same slice.
func sameSlice(a, b PodList) bool {
	return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0])
}
