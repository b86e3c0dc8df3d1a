package annotations

import (
	"reflect"
	"strings"
	"testing"

	"github.com/nodemesh/nodemesh/pkg/table"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name   string
		in     map[string]string
		want   Policy
		errors []string // annotation names that must be reported, in order
	}{
		{name: "nothing set", in: nil, want: Policy{}},
		{
			name: "every key under our prefix",
			in: map[string]string{
				"nodemesh.io/traffic-type": "tcp", "nodemesh.io/scheme": "https", "nodemesh.io/retry-attempts": "2",
				"nodemesh.io/circuit-breaker-expression": "LatencyAtQuantileMS(50.0) > 100",
				"nodemesh.io/ratelimit-average":          "10", "nodemesh.io/ratelimit-burst": "20",
			},
			want: Policy{TrafficType: TrafficTCP, Scheme: table.SchemeHTTPS, RetryAttempts: 2,
				CircuitBreaker: "LatencyAtQuantileMS(50.0) > 100", RateLimitAverage: 10, RateLimitBurst: 20},
		},
		{
			name: "ours win over Traefik Mesh's, which win over the legacy prefix",
			in: map[string]string{
				"nodemesh.io/scheme": "h2c", "mesh.traefik.io/scheme": "https", "maesh.containo.us/scheme": "http",
				"mesh.traefik.io/retry-attempts": "4", "maesh.containo.us/retry-attempts": "1",
				"maesh.containo.us/traffic-type": "udp",
			},
			want: Policy{Scheme: table.SchemeH2C, RetryAttempts: 4, TrafficType: TrafficUDP},
		},
		{
			name: "an invalid value of ours is an error and does not fall back to an alias",
			in:   map[string]string{"nodemesh.io/retry-attempts": "many", "mesh.traefik.io/retry-attempts": "2", "nodemesh.io/scheme": "https"},
			want: Policy{Scheme: table.SchemeHTTPS}, errors: []string{"nodemesh.io/retry-attempts"},
		},
		{
			name: "values are trimmed and case-folded",
			in:   map[string]string{"nodemesh.io/traffic-type": " HTTP ", "nodemesh.io/scheme": "H2C"},
			want: Policy{TrafficType: TrafficHTTP, Scheme: table.SchemeH2C},
		},
		{
			name: "bad values, one error each, in key order",
			in: map[string]string{
				"nodemesh.io/traffic-type": "grpc", "nodemesh.io/scheme": "ws", "nodemesh.io/retry-attempts": "11",
				"nodemesh.io/circuit-breaker-expression": "Nope() >", "nodemesh.io/ratelimit-average": "0",
				"nodemesh.io/ratelimit-burst": "-3",
			},
			errors: []string{"nodemesh.io/traffic-type", "nodemesh.io/scheme", "nodemesh.io/retry-attempts",
				"nodemesh.io/circuit-breaker-expression", "nodemesh.io/ratelimit-average", "nodemesh.io/ratelimit-burst"},
		},
		{
			name:   "a burst without an average is reported and dropped",
			in:     map[string]string{"mesh.traefik.io/ratelimit-burst": "5"},
			errors: []string{"mesh.traefik.io/ratelimit-burst"},
		},
		{
			name: "an empty circuit breaker is an error",
			in:   map[string]string{"nodemesh.io/circuit-breaker-expression": "  "}, errors: []string{"nodemesh.io/circuit-breaker-expression"},
		},
		{name: "unknown keys are ignored", in: map[string]string{"nodemesh.io/colour": "blue", "other.io/scheme": "ftp"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, errs := Parse(tt.in)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("policy = %+v, want %+v", got, tt.want)
			}
			var names []string
			for _, e := range errs {
				names = append(names, e.Annotation)
				if !strings.Contains(e.Error(), e.Annotation) || !strings.Contains(e.Error(), e.Value) {
					t.Errorf("error %q does not name the key and value", e.Error())
				}
			}
			if !reflect.DeepEqual(names, tt.errors) {
				t.Errorf("errors on %v, want %v", names, tt.errors)
			}
		})
	}
}

func TestCircuitBreakerCheckIsCached(t *testing.T) {
	const expr = "NetworkErrorRatio() > 0.25"
	if err := checkCircuitBreaker(expr); err != nil {
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(100, func() { _ = checkCircuitBreaker(expr) })
	if allocs > 0 {
		t.Fatalf("a cached check allocates %v times", allocs)
	}
	if checkCircuitBreaker("NetworkErrorRatio() >") == nil || checkCircuitBreaker("NetworkErrorRatio() >") == nil {
		t.Fatal("a bad expression passed (first or cached check)")
	}
}

func TestKeysSorted(t *testing.T) {
	keys := Keys()
	if len(keys) != 22 || keys[0] != "circuit-breaker-expression" || keys[21] != "traffic-type" {
		t.Fatalf("Keys() = %v", keys)
	}
}
