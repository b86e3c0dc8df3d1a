// Package distribution carries the routing table from the controller to the
// node proxies with a versioned long poll over plain HTTP (see
// docs/distribution-protocol.md):
//
//	GET /api/table?version=<N>&node=<node>&applied=<M>&ready=<bool>&wait=<dur>
//
// answers 200 with the JSON table at once when the server's version differs
// from N, else holds the request until a new version is published or wait
// passes, then answers 304. The query also reports the node's applied
// version and readiness, which the server keeps for /api/status/nodes.
//
// A long poll rather than a stream: every request is a complete, stateless
// exchange, so proxies behind any HTTP load balancer reconnect to whichever
// controller replica leads without a session to resume.
package distribution

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nodemesh/nodemesh/pkg/table"
)

// Path is where the controller serves the table watch.
const Path = "/api/table"

// HeaderVersion carries the server's current table version on every 200 and
// 304 answer.
const HeaderVersion = "X-Nodemesh-Table-Version"

// Defaults for zero ServerOptions fields.
const (
	DefaultWait       = 30 * time.Second
	DefaultMaxWait    = 5 * time.Minute
	DefaultNodeExpiry = 10 * time.Minute
)

// ServerOptions configures a Server. The zero value is usable.
type ServerOptions struct {
	// DefaultWait is how long a request without wait= is held. Zero means
	// DefaultWait.
	DefaultWait time.Duration
	// MaxWait caps the wait a client may ask for. Zero means DefaultMaxWait.
	MaxWait time.Duration
	// NodeExpiry drops a node from Nodes once it has had no request in
	// flight and has not been seen for this long. Zero means
	// DefaultNodeExpiry.
	NodeExpiry time.Duration
	// InitialVersion is the version of the first published table. Zero
	// means the current Unix time in milliseconds: versions then keep
	// increasing across controller restarts and leader changes, so a proxy
	// never mistakes a new leader's different table for the one it holds
	// because both happen to carry the same small number.
	InitialVersion uint64
	// Now returns the time; nil means time.Now. Tests set it.
	Now func() time.Time
}

// NodeStatus is what the server last heard from one node's proxy.
type NodeStatus struct {
	// Node is the node name the proxy reported.
	Node string `json:"node"`
	// AppliedVersion is the table version the proxy serves.
	AppliedVersion uint64 `json:"appliedVersion"`
	// Ready is the proxy's own readiness (it has applied a table).
	Ready bool `json:"ready"`
	// LastSeen is when its latest request arrived.
	LastSeen time.Time `json:"lastSeen"`
	// Connected is true while one of its long polls is held open.
	Connected bool `json:"connected"`
}

// Server publishes tables and serves the long poll. Its methods are safe for
// concurrent use.
type Server struct {
	opts ServerOptions
	enc  table.Encoder // keeps the pods' encoding while the builders reuse them

	// publish serialises Publish calls, so that versions follow the
	// order of the calls and a version's comparison with the one before
	// and its pods' step (a pass over every pod) are made outside mu,
	// which every poll takes.
	publish sync.Mutex

	mu      sync.Mutex
	snap    *snapshot     // nil until the first Publish; written under publish and mu
	history []base        // the latest versions, oldest first, current last
	changed chan struct{} // closed and replaced by each version bump
	nodes   map[string]*nodeState
}

// historySize is how many versions the server can send a delta against:
// the current one and the ones before it. A proxy more versions behind gets
// the whole table. Unchanged routes are shared between versions, so each
// kept version costs about its changed routes, its index and its pods if
// they changed.
const historySize = 8

// base is a version a delta can be made against: its parts only, so that
// the history holds no encoded bodies, and its pods' step from the version
// before it (poddelta.go).
type base struct {
	version uint64
	parts   *table.Parts
	pods    podStep
}

// snapshot is one published version, encoded once for every reader. The
// whole table's body is joined from the parts on first demand: proxies
// that hold a recent version read deltas, so most versions are never sent
// whole, and joining one costs a copy of the whole table (about 2 MB at
// 3,000 services) on every rebuild.
type snapshot struct {
	version uint64
	table   *table.Table
	parts   *table.Parts

	fullOnce sync.Once
	full     encoded

	mu     sync.Mutex
	deltas map[deltaKey]*encoded // made on first demand
}

// encoded is one answer body and, made on first demand, its gzip encoding.
type encoded struct {
	body   []byte
	gzOnce sync.Once
	gz     []byte
}

type nodeState struct {
	status   NodeStatus
	inflight int
}

// NewServer returns a Server with no table: polls are held until the first
// Publish.
func NewServer(opts ServerOptions) *Server {
	if opts.DefaultWait <= 0 {
		opts.DefaultWait = DefaultWait
	}
	if opts.MaxWait <= 0 {
		opts.MaxWait = DefaultMaxWait
	}
	if opts.NodeExpiry <= 0 {
		opts.NodeExpiry = DefaultNodeExpiry
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Server{opts: opts, changed: make(chan struct{}), nodes: map[string]*nodeState{}}
}

// Publish makes t the served table and returns its version. The version is
// bumped only when t's encoding (ignoring t.Version) differs from the
// current one, so republishing an unchanged table wakes no proxy. The
// server keeps a shallow copy of t with Version set: the caller must not
// modify t's slices afterwards. Calls may be concurrent; they are served in
// turn.
func (s *Server) Publish(t *table.Table) uint64 {
	s.publish.Lock()
	defer s.publish.Unlock()
	c := *t
	parts, err := s.enc.EncodeParts(&c)
	if err != nil {
		// A Table holds only strings, integers, bools, slices and
		// pointers to those, which encoding/json cannot fail on: an
		// error is a programming error (a field of a type json rejects).
		panic(fmt.Sprintf("distribution: encoding a table failed: %v", err))
	}
	// Only Publish writes s.snap, and it holds s.publish: reading it here
	// without s.mu races with no writer.
	prev := s.snap
	if prev != nil && parts.Equal(prev.parts) {
		return prev.version
	}
	v := s.opts.InitialVersion
	if prev != nil {
		v = prev.version + 1
	} else if v == 0 {
		v = uint64(s.opts.Now().UnixMilli())
	}
	c.Version = v
	step := podStep{whole: true}
	if prev != nil {
		step = stepBetween(prev.table.Pods, c.Pods, parts.Pods == prev.parts.Pods)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.snap = &snapshot{version: v, table: &c, parts: parts}
	if len(s.history) == historySize {
		s.history = append(s.history[:0], s.history[1:]...)
	}
	s.history = append(s.history, base{version: v, parts: parts, pods: step})
	close(s.changed)
	s.changed = make(chan struct{})
	return v
}

// Current returns the served table, or nil before the first Publish. It is
// shared: do not modify it.
func (s *Server) Current() *table.Table {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.snap == nil {
		return nil
	}
	return s.snap.table
}

// Version returns the served version, 0 before the first Publish.
func (s *Server) Version() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.snap == nil {
		return 0
	}
	return s.snap.version
}

// Nodes returns the status of every node heard from recently, sorted by
// node name.
func (s *Server) Nodes() []NodeStatus {
	now := s.opts.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]NodeStatus, 0, len(s.nodes))
	for name, n := range s.nodes {
		if n.inflight == 0 && now.Sub(n.status.LastSeen) > s.opts.NodeExpiry {
			delete(s.nodes, name)
			continue
		}
		st := n.status
		st.Connected = n.inflight > 0
		out = append(out, st)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Node < out[j].Node })
	return out
}

// maxNodeName is the longest node name the server records (a DNS subdomain).
const maxNodeName = 253

// ServeHTTP serves the long poll (mount it at Path).
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	q, err := s.parseQuery(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if q.node != "" {
		s.seen(q)
		defer s.left(q.node)
	}
	var timer *time.Timer
	for {
		s.mu.Lock()
		snap, changed := s.snap, s.changed
		s.mu.Unlock()
		if snap != nil && snap.version != q.version {
			s.writeTable(w, r, snap, q)
			return
		}
		if timer == nil {
			timer = time.NewTimer(q.wait)
			defer timer.Stop()
		}
		select {
		case <-changed:
		case <-timer.C:
			if snap != nil {
				w.Header().Set(HeaderVersion, strconv.FormatUint(snap.version, 10))
			}
			w.WriteHeader(http.StatusNotModified)
			return
		case <-r.Context().Done():
			return
		}
	}
}

type pollQuery struct {
	version, applied uint64
	ready, delta     bool
	runs             bool // the client reads [first,last] runs in a delta
	node             string
	wait             time.Duration
}

func (s *Server) parseQuery(r *http.Request) (pollQuery, error) {
	v := r.URL.Query()
	q := pollQuery{node: v.Get("node"), wait: s.opts.DefaultWait}
	var err error
	if q.version, err = parseUint(v, "version"); err != nil {
		return q, err
	}
	if q.applied, err = parseUint(v, "applied"); err != nil {
		return q, err
	}
	if q.ready, err = parseBool(v, "ready"); err != nil {
		return q, err
	}
	if q.delta, err = parseBool(v, "delta"); err != nil {
		return q, err
	}
	if q.runs, err = parseBool(v, "runs"); err != nil {
		return q, err
	}
	if x := v.Get("wait"); x != "" {
		if q.wait, err = time.ParseDuration(x); err != nil || q.wait < 0 {
			return q, fmt.Errorf("bad wait %q: want a duration such as 30s", x)
		}
	}
	q.wait = min(q.wait, s.opts.MaxWait)
	if len(q.node) > maxNodeName {
		return q, fmt.Errorf("node name longer than %d characters", maxNodeName)
	}
	return q, nil
}

// parseBool reads an optional true/false parameter; absent means false.
func parseBool(v url.Values, key string) (bool, error) {
	x := v.Get(key)
	if x == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(x)
	if err != nil {
		return false, fmt.Errorf("bad %s %q: want true or false", key, x)
	}
	return b, nil
}

func parseUint(v map[string][]string, key string) (uint64, error) {
	x := ""
	if vs := v[key]; len(vs) > 0 {
		x = vs[0]
	}
	if x == "" {
		return 0, nil
	}
	n, err := strconv.ParseUint(x, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("bad %s %q: want an unsigned integer", key, x)
	}
	return n, nil
}

func (s *Server) seen(q pollQuery) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.nodes[q.node]
	if n == nil {
		n = &nodeState{status: NodeStatus{Node: q.node}}
		s.nodes[q.node] = n
	}
	n.status.AppliedVersion = q.applied
	n.status.Ready = q.ready
	n.status.LastSeen = s.opts.Now()
	n.inflight++
}

func (s *Server) left(node string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := s.nodes[node]; n != nil {
		n.inflight--
	}
}

// deltaKey names one delta of a version: its base, and whether it is
// written with runs (for clients that read them).
type deltaKey struct {
	base uint64
	runs bool
}

// gzipMin is the body size from which a gzip-accepting client gets the
// compressed encoding; a large table shrinks about tenfold.
const gzipMin = 4 << 10

func (s *Server) writeTable(w http.ResponseWriter, r *http.Request, snap *snapshot, q pollQuery) {
	h := w.Header()
	h.Set(HeaderVersion, strconv.FormatUint(snap.version, 10))
	h.Set("Cache-Control", "no-store")
	h.Add("Vary", "Accept-Encoding")
	out := s.delta(snap, q)
	if out != nil {
		h.Set("Content-Type", ContentTypeDelta)
		h.Set(HeaderBase, strconv.FormatUint(q.version, 10))
	} else {
		out = snap.whole() // joined only for a client that reads it whole
		h.Set("Content-Type", "application/json")
	}
	body := out.body
	if len(body) >= gzipMin && acceptsGzip(r) {
		if gz := out.gzipped(); gz != nil {
			h.Set("Content-Encoding", "gzip")
			body = gz
		}
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}

// delta returns snap as a delta against the version the poll holds, when
// the poll accepts one and that version is still in the history; else nil.
// Each delta is made once, for the first proxy that asks: proxies move in
// step, so most ask for the same one.
func (s *Server) delta(snap *snapshot, q pollQuery) *encoded {
	if !q.delta || q.version == 0 {
		return nil
	}
	var from *table.Parts
	var steps []podStep // the pods' steps from the base to snap
	s.mu.Lock()
	for _, h := range s.history {
		switch {
		case h.version == q.version:
			from = h.parts
		case from != nil && h.version <= snap.version:
			steps = append(steps, h.pods)
		}
	}
	s.mu.Unlock()
	if from == nil {
		return nil
	}
	snap.mu.Lock()
	defer snap.mu.Unlock()
	key := deltaKey{q.version, q.runs}
	d := snap.deltas[key]
	if d == nil {
		d = &encoded{body: encodeDelta(snap.parts, snap.version, from, q.version, steps, q.runs)}
		if snap.deltas == nil {
			snap.deltas = map[deltaKey]*encoded{}
		}
		snap.deltas[key] = d
	}
	return d
}

// whole returns the whole table's encoding, joining it on first demand.
func (snap *snapshot) whole() *encoded {
	snap.fullOnce.Do(func() { snap.full.body = snap.parts.Bytes(snap.version) })
	return &snap.full
}

// gzipWriters keeps gzip writers between compressions: each holds about
// 1 MB of compressor state, which a new writer would allocate every time.
var gzipWriters = sync.Pool{New: func() any {
	zw, _ := gzip.NewWriterLevel(nil, gzip.BestSpeed)
	return zw
}}

// gzipped compresses the body once, on first demand.
func (e *encoded) gzipped() []byte {
	e.gzOnce.Do(func() {
		var b bytes.Buffer
		zw := gzipWriters.Get().(*gzip.Writer)
		defer gzipWriters.Put(zw)
		zw.Reset(&b)
		if _, err := zw.Write(e.body); err == nil && zw.Close() == nil {
			e.gz = b.Bytes()
		}
	})
	return e.gz
}

func acceptsGzip(r *http.Request) bool {
	for _, v := range r.Header.Values("Accept-Encoding") {
		for _, p := range strings.Split(v, ",") {
			enc, _, _ := strings.Cut(strings.TrimSpace(p), ";")
			if strings.EqualFold(enc, "gzip") {
				return true
			}
		}
	}
	return false
}
