package table

import (
	"encoding/json"
	"sync"
)

// Encoder encodes tables to the same bytes as Encode, and keeps the
// encoding of the last pod list it saw: a table whose Pods is the very same
// slice (not merely equal) reuses it. The pod list is a large part of a
// table and changes far less often than the routes; the controller's
// builders hand successive tables the same slice while the pods are
// unchanged. The caller must not modify a slice it has passed, as with
// every published table. Safe for concurrent use.
type Encoder struct {
	mu      sync.Mutex
	pods    PodList
	encoded []byte // `,"pods":[...]` or empty, for pods
}

// Encode returns the canonical JSON encoding of t.
func (e *Encoder) Encode(t *Table) ([]byte, error) {
	if len(t.Pods) == 0 {
		return Encode(t)
	}
	e.mu.Lock()
	pods, tail := e.pods, e.encoded
	e.mu.Unlock()
	if !sameSlice(pods, t.Pods) {
		b, err := json.Marshal(t.Pods)
		if err != nil {
			return nil, err
		}
		tail = append([]byte(`,"pods":`), b...)
		e.mu.Lock()
		e.pods, e.encoded = t.Pods, tail
		e.mu.Unlock()
	}
	// Pods is the last field and the encoding is an object with a
	// mandatory "schema" field, so the pods go in before the final brace.
	rest := *t
	rest.Pods = nil
	b, err := json.Marshal(&rest)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, len(b)+len(tail))
	out = append(out, b[:len(b)-1]...)
	out = append(out, tail...)
	return append(out, '}'), nil
}

// sameSlice reports whether a and b are the same slice.
func sameSlice(a, b PodList) bool {
	return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0])
}
