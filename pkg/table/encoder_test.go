package table

import (
	"bytes"
	"testing"
)

// TestEncoderMatchesEncode: the Encoder gives Encode's bytes, reuses the
// pods' encoding only for the very same slice, and picks up a new one.
func TestEncoderMatchesEncode(t *testing.T) {
	var e Encoder
	check := func(what string, tb *Table) []byte {
		t.Helper()
		want, err := Encode(tb)
		if err != nil {
			t.Fatal(err)
		}
		got, err := e.Encode(tb)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("%s: Encoder gives\n%s\nwant\n%s", what, got, want)
		}
		return got
	}
	a := validTable()
	check("first table", a)
	b := validTable() // equal pods in another slice
	b.Version = 7
	b.HTTP[0].Backends[0].Weight = 5
	check("an edited table", b)
	b.Pods = a.Pods // the same slice: reused
	check("the same pods", b)
	c := validTable()
	c.Pods = append(PodList{{IP: "10.0.0.1", Namespace: "x", Name: "y", ServiceAccount: "z"}}, c.Pods[1:]...)
	check("other pods", c)
	check("no pods", &Table{Schema: SchemaVersion})
	check("back to the first pods", a)

	// The very same slice is not encoded again: a slice changed in place
	// (which callers must not do) keeps its old encoding.
	before, _ := e.Encode(a)
	a.Pods[0].Name = "renamed"
	if after, _ := e.Encode(a); !bytes.Equal(after, before) {
		t.Fatal("the same pod slice was encoded again")
	}
}
