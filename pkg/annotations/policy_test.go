package annotations

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nodemesh/nodemesh/pkg/table"
)

func intp(n int) *int { return &n }

func TestParseTrafficPolicy(t *testing.T) {
	tests := []struct {
		name   string
		in     map[string]string
		want   TrafficPolicy
		retry  int      // RetryAttempts expected
		errors []string // annotation names reported, in order
	}{
		{
			name: "every key, good values",
			in: map[string]string{
				"nodemesh.io/request-timeout": "1.5s", "nodemesh.io/idle-timeout": "10m",
				"nodemesh.io/max-requests": "100", "nodemesh.io/max-connections": "50",
				"nodemesh.io/retry-attempts": "3", "nodemesh.io/retry-budget": "25%", "nodemesh.io/retry-budget-min-per-second": "0",
				"nodemesh.io/outlier-consecutive-errors": "5", "nodemesh.io/outlier-base-ejection-time": "10s",
				"nodemesh.io/outlier-max-ejection-time": "2m", "nodemesh.io/outlier-max-ejection-percent": "50",
				"nodemesh.io/locality": "Node", "nodemesh.io/locality-max-inflight": "20",
				"nodemesh.io/fault-abort-percent": "10", "nodemesh.io/fault-abort-status": "503",
				"nodemesh.io/fault-delay-percent": "2.5", "nodemesh.io/fault-delay": "200ms",
			},
			retry: 3,
			want: TrafficPolicy{
				RequestTimeout: 1500 * time.Millisecond, IdleTimeout: 10 * time.Minute, MaxRequests: 100, MaxConnections: 50,
				RetryBudget: intp(25), RetryBudgetMinPerSecond: intp(0),
				OutlierConsecutiveErrors: 5, OutlierBaseEjectionTime: 10 * time.Second, OutlierMaxEjectionTime: 2 * time.Minute, OutlierMaxEjectionPercent: 50,
				Locality: table.LocalityNode, LocalityMaxInFlight: 20,
				FaultAbortPercent: 10, FaultAbortStatus: 503, FaultDelayPercent: 2.5, FaultDelay: 200 * time.Millisecond,
			},
		},
		{
			name: "bad values: each key reported and dropped, the others apply",
			in: map[string]string{
				"nodemesh.io/request-timeout": "5", "nodemesh.io/idle-timeout": "-1s", "nodemesh.io/max-requests": "0",
				"nodemesh.io/max-connections": "many", "nodemesh.io/retry-attempts": "2", "nodemesh.io/retry-budget": "120",
				"nodemesh.io/outlier-consecutive-errors": "0", "nodemesh.io/locality": "region",
				"nodemesh.io/fault-abort-percent": "ten", "nodemesh.io/fault-abort-status": "700",
				"nodemesh.io/fault-delay-percent": "5", "nodemesh.io/fault-delay": "soon",
			},
			retry: 2,
			errors: []string{"nodemesh.io/request-timeout", "nodemesh.io/idle-timeout", "nodemesh.io/max-requests",
				"nodemesh.io/max-connections", "nodemesh.io/retry-budget", "nodemesh.io/outlier-consecutive-errors",
				"nodemesh.io/locality", "nodemesh.io/fault-abort-percent", "nodemesh.io/fault-abort-status",
				"nodemesh.io/fault-delay", "nodemesh.io/fault-delay-percent"},
		},
		{
			name:  "a fractional retry budget is refused",
			in:    map[string]string{"nodemesh.io/retry-attempts": "2", "nodemesh.io/retry-budget": "12.5"},
			retry: 2, errors: []string{"nodemesh.io/retry-budget"},
		},
		{
			name:   "a retry budget without retries",
			in:     map[string]string{"nodemesh.io/retry-budget": "10", "nodemesh.io/retry-budget-min-per-second": "1", "nodemesh.io/max-requests": "7"},
			want:   TrafficPolicy{MaxRequests: 7},
			errors: []string{"nodemesh.io/retry-budget", "nodemesh.io/retry-budget-min-per-second"},
		},
		{
			name: "outlier tuning without outlier detection",
			in: map[string]string{"nodemesh.io/outlier-base-ejection-time": "1s", "nodemesh.io/outlier-max-ejection-time": "1m",
				"mesh.traefik.io/outlier-max-ejection-percent": "20"},
			errors: []string{"nodemesh.io/outlier-base-ejection-time", "nodemesh.io/outlier-max-ejection-time", "mesh.traefik.io/outlier-max-ejection-percent"},
		},
		{
			name:   "a max ejection time below the base (default 30s)",
			in:     map[string]string{"nodemesh.io/outlier-consecutive-errors": "3", "nodemesh.io/outlier-max-ejection-time": "10s"},
			want:   TrafficPolicy{OutlierConsecutiveErrors: 3},
			errors: []string{"nodemesh.io/outlier-max-ejection-time"},
		},
		{
			name:   "locality off, and max-inflight without locality",
			in:     map[string]string{"nodemesh.io/locality": "off", "nodemesh.io/locality-max-inflight": "5"},
			errors: []string{"nodemesh.io/locality-max-inflight"},
		},
		{
			name:   "an abort status alone, a delay alone",
			in:     map[string]string{"nodemesh.io/fault-abort-status": "500", "nodemesh.io/fault-delay": "1s"},
			errors: []string{"nodemesh.io/fault-abort-status", "nodemesh.io/fault-delay"},
		},
		{
			name: "an abort percent alone uses the default status later",
			in:   map[string]string{"nodemesh.io/fault-abort-percent": "100"},
			want: TrafficPolicy{FaultAbortPercent: 100},
		},
		{
			name: "a delay percent of 0 with a delay injects nothing and is no error",
			in:   map[string]string{"nodemesh.io/fault-delay-percent": "0", "nodemesh.io/fault-delay": "1s"},
			want: TrafficPolicy{FaultDelay: time.Second},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, errs := Parse(tt.in)
			if !reflect.DeepEqual(got.TrafficPolicy, tt.want) {
				t.Errorf("policy = %+v\nwant     %+v", got.TrafficPolicy, tt.want)
			}
			if got.RetryAttempts != tt.retry {
				t.Errorf("retry attempts = %d, want %d", got.RetryAttempts, tt.retry)
			}
			var names []string
			for _, e := range errs {
				names = append(names, e.Annotation)
				if !strings.Contains(e.Error(), e.Annotation) {
					t.Errorf("error %q does not name its key", e.Error())
				}
			}
			if !reflect.DeepEqual(names, tt.errors) {
				t.Errorf("errors on %v\nwant       %v", names, tt.errors)
			}
		})
	}
}
