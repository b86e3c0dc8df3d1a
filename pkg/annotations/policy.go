package annotations

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nodemesh/nodemesh/pkg/table"
)

// TrafficPolicy holds the traffic-policy keys of issue 11
// (docs/traffic-policy.md). A zero field means the key was absent or
// invalid; the topology applies the defaults below.
type TrafficPolicy struct {
	// RequestTimeout bounds a whole HTTP request (request-timeout).
	RequestTimeout time.Duration `json:"requestTimeout,omitempty"`
	// IdleTimeout ends idle TCP connections and UDP sessions (idle-timeout).
	IdleTimeout time.Duration `json:"idleTimeout,omitempty"`
	// MaxRequests caps in-flight HTTP requests per proxy (max-requests).
	MaxRequests int `json:"maxRequests,omitempty"`
	// MaxConnections caps open TCP connections per proxy (max-connections).
	MaxConnections int `json:"maxConnections,omitempty"`
	// RetryBudget is the retry-budget percent; nil means the default. 0 is
	// a valid value (retries only within the per-second floor).
	RetryBudget *int `json:"retryBudget,omitempty"`
	// RetryBudgetMinPerSecond is retry-budget-min-per-second; nil means the
	// default.
	RetryBudgetMinPerSecond *int `json:"retryBudgetMinPerSecond,omitempty"`
	// OutlierConsecutiveErrors turns outlier detection on.
	OutlierConsecutiveErrors int `json:"outlierConsecutiveErrors,omitempty"`
	// OutlierBaseEjectionTime, OutlierMaxEjectionTime and
	// OutlierMaxEjectionPercent tune it; zero means the default.
	OutlierBaseEjectionTime   time.Duration `json:"outlierBaseEjectionTime,omitempty"`
	OutlierMaxEjectionTime    time.Duration `json:"outlierMaxEjectionTime,omitempty"`
	OutlierMaxEjectionPercent int           `json:"outlierMaxEjectionPercent,omitempty"`
	// Locality is node or zone; "" means off (also when set to "off").
	Locality table.LocalityMode `json:"locality,omitempty"`
	// LocalityMaxInFlight is when a preferred endpoint counts as
	// overloaded; zero means the default.
	LocalityMaxInFlight int `json:"localityMaxInFlight,omitempty"`
	// Fault injection, a test tool: a share of requests aborted with a
	// status, and a share delayed.
	FaultAbortPercent float64       `json:"faultAbortPercent,omitempty"`
	FaultAbortStatus  int           `json:"faultAbortStatus,omitempty"`
	FaultDelayPercent float64       `json:"faultDelayPercent,omitempty"`
	FaultDelay        time.Duration `json:"faultDelay,omitempty"`
}

// Defaults of the traffic-policy keys, applied by the topology.
const (
	DefaultRetryBudgetPercent      = 20
	DefaultRetryBudgetMinPerSecond = 3
	DefaultRetryBudgetWindow       = 10 * time.Second
	DefaultOutlierBaseEjectionTime = 30 * time.Second
	DefaultOutlierMaxEjectionTime  = 5 * time.Minute
	DefaultOutlierMaxEjectionPct   = 10
	DefaultLocalityMaxInFlight     = 100
	DefaultFaultAbortStatus        = 503
)

// maxPolicyDuration bounds every duration key, as table.Validate does.
const maxPolicyDuration = table.MaxPolicyDuration

func parseRequestTimeout(p *Policy, v string) error {
	return parseDuration(v, 1, &p.RequestTimeout)
}

func parseIdleTimeout(p *Policy, v string) error {
	return parseDuration(v, 1, &p.IdleTimeout)
}

func parseMaxRequests(p *Policy, v string) error {
	n, err := parsePositive(v)
	if err == nil && n > 1<<30 {
		err = errors.New("want a positive integer up to 2^30")
	}
	if err != nil {
		return err
	}
	p.MaxRequests = int(n)
	return nil
}

func parseMaxConnections(p *Policy, v string) error {
	n, err := parsePositive(v)
	if err == nil && n > 1<<30 {
		err = errors.New("want a positive integer up to 2^30")
	}
	if err != nil {
		return err
	}
	p.MaxConnections = int(n)
	return nil
}

func parseRetryBudget(p *Policy, v string) error {
	f, err := parsePercent(v)
	if err != nil {
		return err
	}
	if f != float64(int(f)) {
		return errors.New("want a whole percentage from 0 to 100")
	}
	n := int(f)
	p.RetryBudget = &n
	return nil
}

func parseRetryBudgetMin(p *Policy, v string) error {
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n < 0 || n > 1_000_000 {
		return errors.New("want an integer from 0 to 1000000")
	}
	p.RetryBudgetMinPerSecond = &n
	return nil
}

func parseOutlierErrors(p *Policy, v string) error {
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n < 1 || n > table.MaxOutlierErrors {
		return fmt.Errorf("want an integer from 1 to %d", table.MaxOutlierErrors)
	}
	p.OutlierConsecutiveErrors = n
	return nil
}

func parseOutlierBase(p *Policy, v string) error {
	return parseDuration(v, time.Millisecond, &p.OutlierBaseEjectionTime)
}

func parseOutlierMax(p *Policy, v string) error {
	return parseDuration(v, time.Millisecond, &p.OutlierMaxEjectionTime)
}

func parseOutlierPercent(p *Policy, v string) error {
	f, err := parsePercent(v)
	if err != nil || f < 1 || f != float64(int(f)) {
		return errors.New("want a whole percentage from 1 to 100")
	}
	p.OutlierMaxEjectionPercent = int(f)
	return nil
}

func parseLocality(p *Policy, v string) error {
	switch m := strings.ToLower(strings.TrimSpace(v)); m {
	case "off":
		p.Locality = ""
		return nil
	case string(table.LocalityNode), string(table.LocalityZone):
		p.Locality = table.LocalityMode(m)
		return nil
	}
	return errors.New("want node, zone or off")
}

func parseLocalityMaxInFlight(p *Policy, v string) error {
	n, err := parsePositive(v)
	if err == nil && n > 1<<30 {
		err = errors.New("want a positive integer up to 2^30")
	}
	if err != nil {
		return err
	}
	p.LocalityMaxInFlight = int(n)
	return nil
}

func parseFaultAbortPercent(p *Policy, v string) error {
	f, err := parsePercent(v)
	if err != nil {
		return err
	}
	p.FaultAbortPercent = f
	return nil
}

func parseFaultAbortStatus(p *Policy, v string) error {
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n < 200 || n > 599 {
		return errors.New("want an HTTP status from 200 to 599")
	}
	p.FaultAbortStatus = n
	return nil
}

func parseFaultDelayPercent(p *Policy, v string) error {
	f, err := parsePercent(v)
	if err != nil {
		return err
	}
	p.FaultDelayPercent = f
	return nil
}

func parseFaultDelay(p *Policy, v string) error {
	return parseDuration(v, 1, &p.FaultDelay)
}

// parseDuration reads a Go duration ("1.5s") between lo and 24h into d.
func parseDuration(v string, lo time.Duration, d *time.Duration) error {
	x, err := time.ParseDuration(strings.TrimSpace(v))
	if err != nil || x < lo || x > maxPolicyDuration {
		return fmt.Errorf("want a Go duration such as 1.5s, from %s to %s", lo, time.Duration(maxPolicyDuration))
	}
	*d = x
	return nil
}

// parsePercent reads "10", "2.5" or "10%" as a number from 0 to 100.
func parsePercent(v string) (float64, error) {
	s := strings.TrimSuffix(strings.TrimSpace(v), "%")
	f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil || !(f >= 0 && f <= 100) {
		return 0, errors.New("want a percentage from 0 to 100")
	}
	return f, nil
}

// checkTrafficPolicy reports keys that only make sense together with
// another one, and drops them, after every key was parsed. Like a bad value,
// such a key is an error naming it, and the rest of the policy applies.
func checkTrafficPolicy(annotations map[string]string, p *Policy) []KeyError {
	var errs []KeyError
	report := func(key, reason string) {
		name, value, _ := lookup(annotations, key)
		errs = append(errs, KeyError{Annotation: name, Value: value, Reason: reason})
	}
	has := func(key string) bool { _, _, ok := lookup(annotations, key); return ok }

	if p.RetryBudget != nil && p.RetryAttempts <= 1 {
		report("retry-budget", "has no effect without retry-attempts above 1")
		p.RetryBudget = nil
	}
	if p.RetryBudgetMinPerSecond != nil && p.RetryAttempts <= 1 {
		report("retry-budget-min-per-second", "has no effect without retry-attempts above 1")
		p.RetryBudgetMinPerSecond = nil
	}
	if p.OutlierConsecutiveErrors == 0 {
		for _, k := range []struct {
			key  string
			drop func()
			set  bool
		}{
			{"outlier-base-ejection-time", func() { p.OutlierBaseEjectionTime = 0 }, p.OutlierBaseEjectionTime != 0},
			{"outlier-max-ejection-time", func() { p.OutlierMaxEjectionTime = 0 }, p.OutlierMaxEjectionTime != 0},
			{"outlier-max-ejection-percent", func() { p.OutlierMaxEjectionPercent = 0 }, p.OutlierMaxEjectionPercent != 0},
		} {
			if k.set {
				report(k.key, "has no effect without outlier-consecutive-errors")
				k.drop()
			}
		}
	}
	if p.OutlierMaxEjectionTime != 0 {
		base := p.OutlierBaseEjectionTime
		if base == 0 {
			base = DefaultOutlierBaseEjectionTime
		}
		if p.OutlierMaxEjectionTime < base {
			report("outlier-max-ejection-time", fmt.Sprintf("shorter than the base ejection time %s", base))
			p.OutlierMaxEjectionTime = 0
		}
	}
	if p.LocalityMaxInFlight != 0 && p.Locality == "" {
		report("locality-max-inflight", "has no effect without locality node or zone")
		p.LocalityMaxInFlight = 0
	}
	if p.FaultAbortStatus != 0 && !has("fault-abort-percent") {
		report("fault-abort-status", "has no effect without fault-abort-percent")
		p.FaultAbortStatus = 0
	}
	if p.FaultDelayPercent > 0 && p.FaultDelay == 0 {
		report("fault-delay-percent", "needs fault-delay")
		p.FaultDelayPercent = 0
	}
	if p.FaultDelay != 0 && !has("fault-delay-percent") {
		report("fault-delay", "has no effect without fault-delay-percent")
		p.FaultDelay = 0
	}
	return errs
}

// Find returns the annotation that sets key (without prefix) under the
// first prefix that has it, as Parse reads it.
func Find(annotations map[string]string, key string) (name, value string, ok bool) {
	return lookup(annotations, key)
}

// HTTPOnlyKeys are the traffic-policy keys that only HTTP ports use.
var HTTPOnlyKeys = []string{
	"request-timeout", "max-requests", "retry-budget", "retry-budget-min-per-second",
	"outlier-consecutive-errors", "outlier-base-ejection-time", "outlier-max-ejection-time", "outlier-max-ejection-percent",
	"fault-abort-percent", "fault-abort-status", "fault-delay-percent", "fault-delay",
}
