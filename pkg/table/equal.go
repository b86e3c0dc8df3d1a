package table

// Equal reports whether r and o are deeply equal, as reflect.DeepEqual
// would (a nil list differs from an empty one, since they encode
// differently), at a fraction of its cost: the Encoder compares every route
// of a new version with the previous version's (parts.go), and
// reflect.DeepEqual was a fifth of a controller rebuild after one weight
// edit among 1,000 services. TestEqualSeesEveryField fails when a field is
// added here without being compared.
func (r *HTTPRoute) Equal(o *HTTPRoute) bool {
	return r.Service == o.Service && r.Port == o.Port && r.DefaultPort == o.DefaultPort && r.Scheme == o.Scheme &&
		sliceEq(r.Hosts, o.Hosts, eq[string]) &&
		sliceEq(r.Matches, o.Matches, (*HTTPMatchRoute).equal) &&
		sliceEq(r.Backends, o.Backends, (*Backend).equal) &&
		r.Middleware.equal(&o.Middleware) &&
		sliceEq(r.Allow, o.Allow, (*HTTPAllow).equal)
}

// Equal is HTTPRoute.Equal for stream routes.
func (r *StreamRoute) Equal(o *StreamRoute) bool {
	return r.Service == o.Service && r.Port == o.Port && r.ProxyPort == o.ProxyPort &&
		r.IdleTimeout == o.IdleTimeout && r.MaxConnections == o.MaxConnections && ptrEq(r.Locality, o.Locality) &&
		sliceEq(r.Backends, o.Backends, (*Backend).equal) &&
		sliceEq(r.Allow, o.Allow, (*StreamAllow).equal)
}

func (m *HTTPMatchRoute) equal(o *HTTPMatchRoute) bool {
	return m.Name == o.Name && m.Match.equal(&o.Match) && sliceEq(m.Backends, o.Backends, (*Backend).equal)
}

func (m *HTTPMatch) equal(o *HTTPMatch) bool {
	return m.PathRegex == o.PathRegex && sliceEq(m.Methods, o.Methods, eq[string]) && sliceEq(m.Headers, o.Headers, eq[HeaderMatch])
}

func (b *Backend) equal(o *Backend) bool {
	return b.Service == o.Service && b.Weight == o.Weight && sliceEq(b.Endpoints, o.Endpoints, eq[Endpoint])
}

func (m *Middleware) equal(o *Middleware) bool {
	return m.RetryAttempts == o.RetryAttempts && m.CircuitBreaker == o.CircuitBreaker && m.RequestTimeout == o.RequestTimeout &&
		m.MaxRequests == o.MaxRequests && ptrEq(m.RateLimit, o.RateLimit) && ptrEq(m.RetryBudget, o.RetryBudget) &&
		ptrEq(m.Outlier, o.Outlier) && ptrEq(m.Locality, o.Locality) && ptrEq(m.Faults, o.Faults)
}

func (a *HTTPAllow) equal(o *HTTPAllow) bool {
	return sliceEq(a.Sources, o.Sources, eq[Identity]) && sliceEq(a.Matches, o.Matches, (*HTTPMatch).equal)
}

func (a *StreamAllow) equal(o *StreamAllow) bool {
	return sliceEq(a.Sources, o.Sources, eq[Identity])
}

// sliceEq compares two lists as reflect.DeepEqual does: both nil or both
// not, the same length, and equal elements; the same backing array (lists
// the builders share between versions) is equal at once.
func sliceEq[T any](a, b []T, equal func(*T, *T) bool) bool {
	if (a == nil) != (b == nil) || len(a) != len(b) {
		return false
	}
	if len(a) == 0 || &a[0] == &b[0] {
		return true
	}
	for i := range a {
		if !equal(&a[i], &b[i]) {
			return false
		}
	}
	return true
}

func eq[T comparable](a, b *T) bool { return *a == *b }

// ptrEq compares two optional settings: both absent, or equal values.
func ptrEq[T comparable](a, b *T) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}
