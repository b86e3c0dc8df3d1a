package table

import (
	"bytes"
	"reflect"
	"testing"
	"unsafe"

	"github.com/nodemesh/nodemesh/pkg/table/tabletest"
)

// goldenTables decodes the routing builder's golden tables.
func goldenTables(t *testing.T) map[string]*Table {
	t.Helper()
	out := map[string]*Table{}
	for _, g := range tabletest.Goldens(t) {
		tb, err := Decode(g.JSON)
		if err != nil {
			t.Fatalf("%s: %v", g.Name, err)
		}
		out[g.Name] = tb
	}
	return out
}

// TestPartsBytesMatchEncode: joining the parts gives Encode's bytes for
// every golden table, with and without a version, and each part is the
// encoding of its element.
func TestPartsBytesMatchEncode(t *testing.T) {
	var e Encoder
	tables := goldenTables(t)
	tables["empty"] = &Table{Schema: SchemaVersion}
	tables["valid"] = validTable()
	for name, tb := range tables {
		for _, version := range []uint64{0, 1795610680364} {
			tb.Version = version
			want, err := Encode(tb)
			if err != nil {
				t.Fatal(err)
			}
			p, err := e.EncodeParts(tb)
			if err != nil {
				t.Fatal(err)
			}
			if got := p.Bytes(version); !bytes.Equal(got, want) {
				t.Errorf("%s: Parts.Bytes gives\n%s\nwant\n%s", name, got, want)
			}
			if len(p.HTTP) != len(tb.HTTP) || len(p.TCP) != len(tb.TCP) || len(p.UDP) != len(tb.UDP) {
				t.Errorf("%s: %d/%d/%d parts for %d/%d/%d routes", name, len(p.HTTP), len(p.TCP), len(p.UDP), len(tb.HTTP), len(tb.TCP), len(tb.UDP))
			}
		}
	}
}

// TestPartsShareUnchangedRoutes: a route whose encoding did not change gets
// the previous table's very string; Equal and Index see the tables as they
// are.
func TestPartsShareUnchangedRoutes(t *testing.T) {
	var e Encoder
	a := validTable()
	pa, err := e.EncodeParts(a)
	if err != nil {
		t.Fatal(err)
	}
	b := validTable()
	b.HTTP = append(b.HTTP, b.HTTP[0])
	b.HTTP[1].Port = 8080
	pb, err := e.EncodeParts(b)
	if err != nil {
		t.Fatal(err)
	}
	if unsafe.StringData(pb.HTTP[0]) != unsafe.StringData(pa.HTTP[0]) {
		t.Error("an unchanged route was not shared with the previous table")
	}
	if pa.Equal(pb) || !pb.Equal(pb) {
		t.Error("Equal is wrong")
	}
	if got := pb.Index(SectionHTTP); !reflect.DeepEqual(got, map[string]int{pb.HTTP[0]: 0, pb.HTTP[1]: 1}) {
		t.Errorf("index = %v", got)
	}
	c := validTable()
	c.ACL = !c.ACL
	pc, _ := e.EncodeParts(c)
	if pc.Equal(pa) {
		t.Error("Equal ignores ACL")
	}
}

// TestPartsKnowEveryTableField: Parts.Bytes writes the table's fields by
// hand, so a new Table field must be added there (and to the delta of
// pkg/distribution) before this passes.
func TestPartsKnowEveryTableField(t *testing.T) {
	var got []string
	rt := reflect.TypeFor[Table]()
	for i := range rt.NumField() {
		got = append(got, rt.Field(i).Tag.Get("json"))
	}
	want := []string{"schema", "version", "acl", "http,omitempty", "tcp,omitempty", "udp,omitempty", "nodes,omitempty", "pods,omitempty"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Table's JSON fields are %q; Parts knows %q", got, want)
	}
}
