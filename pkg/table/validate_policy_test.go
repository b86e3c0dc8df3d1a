package table

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
)

// policyTable is validTable with every traffic-policy field set.
func policyTable() *Table {
	t := validTable()
	m := &t.HTTP[0].Middleware
	m.RequestTimeout = Duration(1500 * time.Millisecond)
	m.MaxRequests = 100
	m.RetryBudget = &RetryBudget{Percent: 20, MinPerSecond: 3, Window: Duration(10 * time.Second)}
	m.Outlier = &Outlier{ConsecutiveErrors: 5, BaseEjectionTime: Duration(30 * time.Second), MaxEjectionTime: Duration(5 * time.Minute), MaxEjectionPercent: 10}
	m.Locality = &Locality{Prefer: LocalityNode, MaxInFlight: 100}
	m.Faults = &Faults{AbortPercent: 10, AbortStatus: 503, DelayPercent: 2.5, Delay: Duration(time.Second)}
	t.TCP[0].IdleTimeout = Duration(time.Minute)
	t.TCP[0].MaxConnections = 10
	t.TCP[0].Locality = &Locality{Prefer: LocalityZone}
	t.UDP[0].IdleTimeout = Duration(30 * time.Second)
	t.Nodes = []Node{{Name: "node-a", Zone: "z1"}, {Name: "node-b", Zone: "z2"}}
	return t
}

func TestValidateAcceptsPolicy(t *testing.T) {
	if err := Validate(policyTable()); err != nil {
		t.Fatalf("Validate: %v", err)
	}
}

func TestValidateRejectsBadPolicy(t *testing.T) {
	mw := func(t *Table) *Middleware { return &t.HTTP[0].Middleware }
	tests := []struct {
		name   string
		break_ func(*Table)
		want   string
	}{
		{"negative request timeout", func(t *Table) { mw(t).RequestTimeout = -1 }, "requestTimeout -1ns is out of range"},
		{"huge request timeout", func(t *Table) { mw(t).RequestTimeout = Duration(48 * time.Hour) }, "requestTimeout 48h0m0s is out of range"},
		{"negative max requests", func(t *Table) { mw(t).MaxRequests = -1 }, "maxRequests -1 is negative"},
		{"budget over 100%", func(t *Table) { mw(t).RetryBudget.Percent = 101 }, "retryBudget percent 101"},
		{"budget without window", func(t *Table) { mw(t).RetryBudget.Window = 0 }, "retryBudget window 0s is out of range"},
		{"budget negative floor", func(t *Table) { mw(t).RetryBudget.MinPerSecond = -1 }, "minPerSecond -1"},
		{"outlier zero errors", func(t *Table) { mw(t).Outlier.ConsecutiveErrors = 0 }, "consecutiveErrors 0 is out of range"},
		{"outlier max below base", func(t *Table) { mw(t).Outlier.MaxEjectionTime = Duration(time.Second) }, "maxEjectionTime 1s is shorter than baseEjectionTime 30s"},
		{"outlier percent 0", func(t *Table) { mw(t).Outlier.MaxEjectionPercent = 0 }, "maxEjectionPercent 0 is out of range"},
		{"unknown locality", func(t *Table) { mw(t).Locality.Prefer = "region" }, `locality prefer "region"`},
		{"abort percent over 100", func(t *Table) { mw(t).Faults.AbortPercent = 100.5 }, "abortPercent 100.5"},
		{"abort status 99", func(t *Table) { mw(t).Faults.AbortStatus = 99 }, "abortStatus 99"},
		{"delay percent without delay", func(t *Table) { mw(t).Faults.Delay = 0 }, "faults delay 0s is out of range"},
		{"tcp negative idle", func(t *Table) { t.TCP[0].IdleTimeout = -5 }, "tcp route shop/db port 5432: idleTimeout"},
		{"tcp negative max connections", func(t *Table) { t.TCP[0].MaxConnections = -2 }, "maxConnections -2"},
		{"udp bad locality", func(t *Table) { t.UDP[0].Locality = &Locality{Prefer: ""} }, `udp route shop/dns port 53: locality prefer ""`},
		{"node twice", func(t *Table) { t.Nodes = append(t.Nodes, t.Nodes[0]) }, "node node-a: listed twice"},
		{"node without zone", func(t *Table) { t.Nodes[1].Zone = "" }, "node node-b: empty zone"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tb := policyTable()
			tt.break_(tb)
			err := Validate(tb)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestValidateFaultStatusWithoutPercent(t *testing.T) {
	// A status with no abort share injects nothing; it is not an error.
	tb := validTable()
	tb.HTTP[0].Middleware.Faults = &Faults{AbortStatus: 1}
	if err := Validate(tb); err != nil {
		t.Fatalf("Validate: %v", err)
	}
}

func TestPolicyRoundTrip(t *testing.T) {
	in := policyTable()
	b, err := Encode(in)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"requestTimeout":"1.5s"`, `"window":"10s"`, `"idleTimeout":"1m0s"`, `"prefer":"node"`, `"nodes":[{"name":"node-a","zone":"z1"}`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("encoding lacks %s:\n%s", want, b)
		}
	}
	out, err := Decode(b)
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	if !reflect.DeepEqual(in, out) {
		t.Fatalf("round trip differs:\n in %+v\nout %+v", in, out)
	}
}

func TestDurationJSON(t *testing.T) {
	tests := []struct {
		in   string
		want Duration
		err  string
	}{
		{`"1.5s"`, Duration(1500 * time.Millisecond), ""},
		{`"250ms"`, Duration(250 * time.Millisecond), ""},
		{`"0s"`, 0, ""},
		{`1500`, 0, "want a string"},
		{`"soon"`, 0, "invalid duration"},
		{`null`, 0, ""},
	}
	for _, tt := range tests {
		var d Duration
		err := json.Unmarshal([]byte(tt.in), &d)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%s: error %v, want %q", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil || d != tt.want {
			t.Errorf("%s: got %v, %v; want %v", tt.in, d, err, tt.want)
		}
	}
}
