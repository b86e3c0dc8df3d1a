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
//   - the previous table's encoding of each route that is unchanged (deeply
//     equal to the previous table's route for the same service port, which
//     is far cheaper to check than to encode), and the previous table's
//     string for any route whose encoding is, so that versions kept side
//     by side share them. The Encoder keeps the previous table for that:
//     like every published table, it must not be modified.
//
// Safe for concurrent use.
type Encoder struct {
	mu      sync.Mutex
	pods    PodList
	encoded string // the encoding of pods
	// prev and prevTable are the previous table's parts and the table.
	prev      *Parts
	prevTable *Table
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
	prev, pt := e.prev, e.prevTable
	if prev == nil {
		prev, pt = &Parts{}, &Table{}
	}
	p := &Parts{Schema: t.Schema, ACL: t.ACL}
	var err error
	if p.HTTP, err = encodeItems(t.HTTP, httpKey, (*HTTPRoute).Equal, pt.HTTP, prev.HTTP, prev.Index(SectionHTTP)); err != nil {
		return nil, err
	}
	if p.TCP, err = encodeItems(t.TCP, streamKey, (*StreamRoute).Equal, pt.TCP, prev.TCP, prev.Index(SectionTCP)); err != nil {
		return nil, err
	}
	if p.UDP, err = encodeItems(t.UDP, streamKey, (*StreamRoute).Equal, pt.UDP, prev.UDP, prev.Index(SectionUDP)); err != nil {
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
	e.prev, e.prevTable = p, t
	return p, nil
}

// sameSlice reports whether a and b are the same slice.
func sameSlice(a, b PodList) bool {
	return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0])
}
