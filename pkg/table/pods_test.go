package table

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// TestPodListEncoding: pods sharing namespace, service account, node and
// workload become one group, groups sorted, IPs in order within a group,
// whatever the input order; an owner-less pod's "Pod/<name>" workload is
// left out and comes back on decoding.
func TestPodListEncoding(t *testing.T) {
	pods := PodList{
		{IP: "10.0.0.9", Namespace: "shop", Name: "web-b", ServiceAccount: "web", Node: "n1", Workload: "Deployment/web"},
		{IP: "10.0.0.3", Namespace: "shop", Name: "debug", ServiceAccount: "default", Node: "n1", Workload: "Pod/debug"},
		{IP: "10.0.0.1", Namespace: "shop", Name: "web-a", ServiceAccount: "web", Node: "n1", Workload: "Deployment/web"},
		{IP: "10.0.0.2", Namespace: "shop", Name: "web-c", ServiceAccount: "web", Node: "n2", Workload: "Deployment/web"},
		{IP: "10.0.0.4", Namespace: "ops", Name: "tool", ServiceAccount: "default", Node: "n1", Workload: "Pod/tool"},
		{IP: "10.0.0.5", Namespace: "shop", Name: "other", ServiceAccount: "default", Node: "n1", Workload: "Pod/debug"}, // not its own name: kept
	}
	b, err := json.Marshal(pods)
	if err != nil {
		t.Fatal(err)
	}
	want := `[{"namespace":"ops","serviceAccount":"default","node":"n1","ips":["10.0.0.4"],"names":["tool"]},` +
		`{"namespace":"shop","serviceAccount":"default","node":"n1","ips":["10.0.0.3"],"names":["debug"]},` +
		`{"namespace":"shop","serviceAccount":"default","node":"n1","workload":"Pod/debug","ips":["10.0.0.5"],"names":["other"]},` +
		`{"namespace":"shop","serviceAccount":"web","node":"n1","workload":"Deployment/web","ips":["10.0.0.1","10.0.0.9"],"names":["web-a","web-b"]},` +
		`{"namespace":"shop","serviceAccount":"web","node":"n2","workload":"Deployment/web","ips":["10.0.0.2"],"names":["web-c"]}]`
	if string(b) != want {
		t.Fatalf("encoded\n%s\nwant\n%s", b, want)
	}
	var got PodList
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	sorted := PodList{pods[2], pods[3], pods[1], pods[4], pods[5], pods[0]} // by IP
	if !reflect.DeepEqual(got, sorted) {
		t.Fatalf("decoded\n%+v\nwant\n%+v", got, sorted)
	}
	if empty, _ := json.Marshal(PodList{}); string(empty) != "[]" {
		t.Errorf("empty list encodes as %s", empty)
	}
}

func TestPodListDecoding(t *testing.T) {
	tests := []struct {
		name, in string
		want     PodList
		err      string
	}{
		{name: "single-pod form", in: `[{"ip":"10.0.0.2","namespace":"a","name":"p","serviceAccount":"s","node":"n","workload":"Deployment/d"},{"ip":"10.0.0.1","namespace":"a","name":"q","serviceAccount":"s"}]`,
			want: PodList{{IP: "10.0.0.1", Namespace: "a", Name: "q", ServiceAccount: "s", Workload: "Pod/q"}, {IP: "10.0.0.2", Namespace: "a", Name: "p", ServiceAccount: "s", Node: "n", Workload: "Deployment/d"}}},
		{name: "null", in: `null`},
		{name: "unknown field", in: `[{"namespace":"a","serviceAccount":"s","ips":["10.0.0.1"],"names":["p"],"zone":"z"}]`, err: `unknown object member name "zone"`},
		{name: "lengths differ", in: `[{"namespace":"a","serviceAccount":"s","ips":["10.0.0.1","10.0.0.2"],"names":["p"]}]`, err: "2 ips and 1 names"},
		{name: "both forms", in: `[{"namespace":"a","serviceAccount":"s","ip":"10.0.0.3","ips":["10.0.0.1"],"names":["p"]}]`, err: "both ip/name and ips/names"},
		{name: "empty group", in: `[{"namespace":"a","serviceAccount":"s"}]`, err: "no ip"},
		{name: "not a list", in: `{"ip":"10.0.0.1"}`, err: "unmarshal JSON object into Go []table.podGroup"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got PodList
			err := json.Unmarshal([]byte(tt.in), &got)
			switch {
			case tt.err != "":
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want one containing %q", err, tt.err)
				}
			case err != nil:
				t.Fatal(err)
			case !reflect.DeepEqual(got, tt.want):
				t.Fatalf("decoded %+v, want %+v", got, tt.want)
			}
		})
	}
}

// TestDecodeKeepsPodsStrict: the table decoder's strictness reaches into
// the pod groups.
func TestDecodeKeepsPodsStrict(t *testing.T) {
	_, err := Decode([]byte(`{"schema":1,"pods":[{"namespace":"a","serviceAccount":"s","ips":["10.0.0.1"],"names":["p"],"admin":true}]}`))
	if err == nil || !strings.Contains(err.Error(), `unknown object member name "admin"`) {
		t.Fatalf("Decode = %v, want an unknown field error", err)
	}
}
