// Package streamcore holds what the TCP and UDP data planes (tcpproxy,
// udpproxy) do alike with a stream route besides keeping its listener
// (portset): the idle timeout and locality balancing of its traffic policy,
// and the bookkeeping of its edge metrics and access log. What each data
// plane counts and logs, and how it moves bytes or datagrams, stays in its
// own package.
package streamcore

import (
	"time"

	"github.com/nodemesh/nodemesh/pkg/proxy/balance"
	"github.com/nodemesh/nodemesh/pkg/table"
)

// IdleTimeout is sr's IdleTimeout when it sets one, else def (the
// Manager's).
func IdleTimeout(sr *table.StreamRoute, def time.Duration) time.Duration {
	if sr.IdleTimeout > 0 {
		return sr.IdleTimeout.D()
	}
	return def
}

// Balance returns the balance.Set that chooses sr's endpoints by locality,
// for a proxy on node; nil (and no error) when sr sets no Locality. prev
// returns the balance.Set of the route serving port now (nil: none); it is
// asked only when sr sets a Locality, and the new Set takes over its
// endpoint states, so open connections or sessions stay counted across a
// reload.
func Balance(t *table.Table, sr *table.StreamRoute, node string, prev func(port int32) *balance.Set) (*balance.Set, error) {
	if sr.Locality == nil {
		return nil, nil
	}
	var states *balance.States
	if p := prev(sr.ProxyPort); p != nil {
		states = p.States()
	}
	return balance.New(sr.Backends, balance.Options{
		Locality: sr.Locality, Node: node, Zone: balance.ZoneOf(t, node),
	}, balance.NewStates(states))
}
