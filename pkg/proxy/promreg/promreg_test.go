package promreg

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestRegisterSharesAndPanicsOnClash(t *testing.T) {
	reg := prometheus.NewRegistry()
	opts := prometheus.CounterOpts{Name: "nodemesh_test_total", Help: "test"}
	a := Register(reg, prometheus.NewCounterVec(opts, []string{"x"}))
	b := Register(reg, prometheus.NewCounterVec(opts, []string{"x"}))
	if a != b {
		t.Error("the second registration did not return the first collector")
	}
	c := prometheus.NewCounter(opts)
	if got := Register(nil, c); got != c {
		t.Error("a nil registry did not return the collector itself")
	}
	defer func() {
		if recover() == nil {
			t.Error("a clashing definition (other labels) did not panic")
		}
	}()
	Register(reg, prometheus.NewCounterVec(opts, []string{"y"}))
}
