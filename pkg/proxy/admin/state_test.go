package admin

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nodemesh/nodemesh/pkg/table"
)

func TestConfigState(t *testing.T) {
	applied := &table.Table{Schema: table.SchemaVersion, Version: 7}
	srv := httptest.NewServer(Handler(Options{
		Applied:  func() *table.Table { return applied },
		Gatherer: prometheus.NewRegistry(),
		State:    func() any { return map[string]int{"ejected": 1} },
	}))
	defer srv.Close()
	get := func(path string) []byte {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get(HeaderVersion) != "7" {
			t.Fatalf("%s: %d %v", path, resp.StatusCode, resp.Header)
		}
		b, _ := io.ReadAll(resp.Body)
		return b
	}
	// Plain /config is still a table, strictly decodable.
	if tb, err := table.Decode(get("/config")); err != nil || tb.Version != 7 {
		t.Fatalf("/config is no longer a table: %v", err)
	}
	var got struct {
		Table table.Table    `json:"table"`
		State map[string]int `json:"state"`
	}
	if err := json.Unmarshal(get("/config?state"), &got); err != nil || got.Table.Version != 7 || got.State["ejected"] != 1 {
		t.Fatalf("/config?state = %+v, %v", got, err)
	}
}
