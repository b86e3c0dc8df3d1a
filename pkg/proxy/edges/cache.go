package edges

import (
	"sync"
	"sync/atomic"
)

// Cache keeps one value per Source, typically the metric children of one
// destination and backend for that source, so the hot path finds them with
// one map lookup by pointer instead of hashing seven label values.
//
// Sources are interned per table, so the cache belongs to one table's
// Sources at a time: the first lookup with a newer table's Sources empties
// it. Reads take no lock (copy on write); a miss builds the value once
// under a lock. A lookup with an older table's Sources (a request that
// started before a reload) gets a value built for it but not kept.
type Cache[T any] struct {
	// New builds the value of a Source on a miss.
	New func(*Source) *T

	cur atomic.Pointer[cacheGen[T]]
	mu  sync.Mutex
}

type cacheGen[T any] struct {
	srcs *Sources
	m    map[*Source]*T
}

// Get returns the value of s, which srcs resolved (or Unknown).
func (c *Cache[T]) Get(srcs *Sources, s *Source) *T {
	if g := c.cur.Load(); g != nil && g.srcs == srcs {
		if v, ok := g.m[s]; ok {
			return v
		}
	}
	return c.miss(srcs, s)
}

func (c *Cache[T]) miss(srcs *Sources, s *Source) *T {
	c.mu.Lock()
	defer c.mu.Unlock()
	g := c.cur.Load()
	if g != nil && g.srcs != srcs && newer(g.srcs, srcs) {
		return c.New(s) // an older table's request: do not evict the newer
	}
	var m map[*Source]*T
	if g != nil && g.srcs == srcs {
		if v, ok := g.m[s]; ok {
			return v
		}
		m = make(map[*Source]*T, len(g.m)+1)
		for k, v := range g.m {
			m[k] = v
		}
	} else {
		m = make(map[*Source]*T, 4)
	}
	v := c.New(s)
	m[s] = v
	c.cur.Store(&cacheGen[T]{srcs: srcs, m: m})
	return v
}

// Reset empties the cache, so that values built from children that were
// deleted from their vector are not used again.
func (c *Cache[T]) Reset() {
	c.mu.Lock()
	c.cur.Store(nil)
	c.mu.Unlock()
}

// newer reports whether a was built after b.
func newer(a, b *Sources) bool {
	if a == nil || b == nil {
		return a != nil
	}
	return a.seq > b.seq
}

// buildSeq numbers Sources in build order, for newer.
var buildSeq atomic.Uint64
