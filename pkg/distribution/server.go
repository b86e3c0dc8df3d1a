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

	mu      sync.Mutex
	snap    *snapshot     // nil until the first Publish
	content []byte        // encoding of snap's table with Version 0
	changed chan struct{} // closed and replaced by each version bump
	nodes   map[string]*nodeState
}

// snapshot is one published version, encoded once for every reader.
type snapshot struct {
	version uint64
	table   *table.Table
	body    []byte
	gzOnce  sync.Once
	gz      []byte
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
// modify t's slices afterwards.
func (s *Server) Publish(t *table.Table) uint64 {
	c := *t
	c.Version = 0
	content := s.encode(&c)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.snap != nil && bytes.Equal(content, s.content) {
		return s.snap.version
	}
	v := s.opts.InitialVersion
	if s.snap != nil {
		v = s.snap.version + 1
	} else if v == 0 {
		v = uint64(s.opts.Now().UnixMilli())
	}
	c.Version = v
	s.snap = &snapshot{version: v, table: &c, body: s.withVersion(content, &c)}
	s.content = content
	close(s.changed)
	s.changed = make(chan struct{})
	return v
}

// withVersion returns the encoding of t (whose Version is set) from content,
// the encoding of the same table with Version 0. Encoding a large table is
// the main cost of a publish, so the version is spliced into the bytes
// already made; when the layout is not the expected one it encodes again.
func (s *Server) withVersion(content []byte, t *table.Table) []byte {
	zero := []byte(`,"version":0,`)
	i := bytes.Index(content[:min(len(content), 64)], zero)
	if i < 0 {
		return s.encode(t)
	}
	out := make([]byte, 0, len(content)+20)
	out = append(out, content[:i]...)
	out = append(out, `,"version":`...)
	out = strconv.AppendUint(out, t.Version, 10)
	out = append(out, ',')
	return append(out, content[i+len(zero):]...)
}

// encode encodes a table. A Table holds only strings, integers, bools,
// slices and pointers to those, which encoding/json cannot fail on, so an
// error here is a programming error (a field of a type json rejects).
func (s *Server) encode(t *table.Table) []byte {
	b, err := s.enc.Encode(t)
	if err != nil {
		panic(fmt.Sprintf("distribution: encoding a table failed: %v", err))
	}
	return b
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
			s.writeTable(w, r, snap)
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
	ready            bool
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
	if x := v.Get("ready"); x != "" {
		if q.ready, err = strconv.ParseBool(x); err != nil {
			return q, fmt.Errorf("bad ready %q: want true or false", x)
		}
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

// gzipMin is the body size from which a gzip-accepting client gets the
// compressed encoding; a large table shrinks about tenfold.
const gzipMin = 4 << 10

func (s *Server) writeTable(w http.ResponseWriter, r *http.Request, snap *snapshot) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set(HeaderVersion, strconv.FormatUint(snap.version, 10))
	h.Set("Cache-Control", "no-store")
	h.Add("Vary", "Accept-Encoding")
	body := snap.body
	if len(body) >= gzipMin && acceptsGzip(r) {
		if gz := snap.gzipped(); gz != nil {
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

// gzipped compresses the body once per version, on first demand.
func (sn *snapshot) gzipped() []byte {
	sn.gzOnce.Do(func() {
		var b bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&b, gzip.BestSpeed)
		if _, err := zw.Write(sn.body); err == nil && zw.Close() == nil {
			sn.gz = b.Bytes()
		}
	})
	return sn.gz
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
