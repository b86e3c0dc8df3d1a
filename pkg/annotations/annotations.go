// Package annotations parses the per-Service mesh policy annotations.
//
// Keys are read under our prefix "nodemesh.io/" and, so Traefik Mesh users
// can switch without edits, under "mesh.traefik.io/" and "maesh.containo.us/".
// When a key is set under several prefixes ours wins, then Traefik Mesh's, then
// the legacy one. Parsing is pure: a bad value becomes a KeyError for that key
// only, and every other key of the same Service still applies.
package annotations

import (
	"fmt"
	"sort"

	"github.com/nodemesh/nodemesh/pkg/table"
)

// Prefix is nodemesh's own annotation prefix.
const Prefix = "nodemesh.io/"

// AliasPrefixes are read after Prefix, in this order of precedence.
var AliasPrefixes = []string{"mesh.traefik.io/", "maesh.containo.us/"}

// TrafficType says how the proxy handles a Service's TCP ports.
type TrafficType string

// Traffic types a Service may ask for.
const (
	TrafficHTTP TrafficType = "http"
	TrafficTCP  TrafficType = "tcp"
	TrafficUDP  TrafficType = "udp"
)

// Policy is the parsed annotation set of one Service. A zero field means the
// key was absent (or invalid): the caller applies its default.
type Policy struct {
	// TrafficType is "" when unset; the caller uses its default mode.
	TrafficType TrafficType `json:"trafficType,omitempty"`
	// Scheme is "" when unset, which means http.
	Scheme table.Scheme `json:"scheme,omitempty"`
	// RetryAttempts is the total number of attempts; 0 means no retries.
	RetryAttempts int `json:"retryAttempts,omitempty"`
	// CircuitBreaker is an oxy cbreaker expression that parsed.
	CircuitBreaker string `json:"circuitBreaker,omitempty"`
	// RateLimitAverage is requests per second per source; 0 means no limit.
	RateLimitAverage int64 `json:"rateLimitAverage,omitempty"`
	// RateLimitBurst is the token bucket size; 0 means "use 1".
	RateLimitBurst int64 `json:"rateLimitBurst,omitempty"`

	// Traffic policy (docs/traffic-policy.md); see policy.go.
	TrafficPolicy
}

// KeyError is one annotation whose value was rejected.
type KeyError struct {
	// Annotation is the full annotation name as found, e.g.
	// "mesh.traefik.io/retry-attempts".
	Annotation string
	// Value is the rejected value.
	Value string
	// Reason says what is wrong, in a few words.
	Reason string
}

// Error renders the error naming the key and the value.
func (e KeyError) Error() string {
	return fmt.Sprintf("annotation %s=%q: %s", e.Annotation, e.Value, e.Reason)
}

// key is one supported annotation key (without prefix). Adding a key (for
// example a request timeout) means adding a Policy field and one entry to keys.
type key struct {
	name  string
	parse func(p *Policy, value string) error
}

// keys lists every supported key. The order is the order errors are reported
// in when several keys of one Service are bad.
var keys = []key{
	{"traffic-type", parseTrafficType},
	{"scheme", parseScheme},
	{"retry-attempts", parseRetryAttempts},
	{"circuit-breaker-expression", parseCircuitBreaker},
	{"ratelimit-average", parseRateLimitAverage},
	{"ratelimit-burst", parseRateLimitBurst},
	{"request-timeout", parseRequestTimeout},
	{"idle-timeout", parseIdleTimeout},
	{"max-requests", parseMaxRequests},
	{"max-connections", parseMaxConnections},
	{"retry-budget", parseRetryBudget},
	{"retry-budget-min-per-second", parseRetryBudgetMin},
	{"outlier-consecutive-errors", parseOutlierErrors},
	{"outlier-base-ejection-time", parseOutlierBase},
	{"outlier-max-ejection-time", parseOutlierMax},
	{"outlier-max-ejection-percent", parseOutlierPercent},
	{"locality", parseLocality},
	{"locality-max-inflight", parseLocalityMaxInFlight},
	{"fault-abort-percent", parseFaultAbortPercent},
	{"fault-abort-status", parseFaultAbortStatus},
	{"fault-delay-percent", parseFaultDelayPercent},
	{"fault-delay", parseFaultDelay},
}

// Keys returns the supported key names, without prefix, sorted.
func Keys() []string {
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = k.name
	}
	sort.Strings(out)
	return out
}

// Parse reads the policy out of a Service's annotations. Errors are in key
// order; the Policy holds every key that parsed.
func Parse(annotations map[string]string) (Policy, []KeyError) {
	var p Policy
	if len(annotations) == 0 {
		return p, nil
	}
	var errs []KeyError
	for _, k := range keys {
		name, value, ok := lookup(annotations, k.name)
		if !ok {
			continue
		}
		if err := k.parse(&p, value); err != nil {
			errs = append(errs, KeyError{Annotation: name, Value: value, Reason: err.Error()})
		}
	}
	if p.RateLimitBurst > 0 && p.RateLimitAverage == 0 {
		name, value, _ := lookup(annotations, "ratelimit-burst")
		errs = append(errs, KeyError{Annotation: name, Value: value, Reason: "has no effect without ratelimit-average"})
		p.RateLimitBurst = 0
	}
	errs = append(errs, checkTrafficPolicy(annotations, &p)...)
	return p, errs
}

// lookup finds key under the first prefix that has it.
func lookup(annotations map[string]string, key string) (name, value string, ok bool) {
	if v, ok := annotations[Prefix+key]; ok {
		return Prefix + key, v, true
	}
	for _, prefix := range AliasPrefixes {
		if v, ok := annotations[prefix+key]; ok {
			return prefix + key, v, true
		}
	}
	return "", "", false
}
