package table

import (
	"bytes"
	"encoding/json"
	"fmt"
	"testing"
)

// largeEncoded is the encoding of a table of 1,000 HTTP services with three
// host names and 10 endpoints each, the benchmark's large table.
func largeEncoded(b *testing.B) []byte {
	t := &Table{Schema: SchemaVersion, Version: 1}
	for i := range 1000 {
		svc := ServiceRef{Namespace: "bench", Name: fmt.Sprintf("svc%d", i)}
		r := HTTPRoute{
			Service: svc, Port: 80, DefaultPort: true, Scheme: SchemeHTTP,
			Hosts: []string{svc.Name + ".bench.mesh", svc.Name + ".bench", fmt.Sprintf("10.96.%d.%d", i/250, i%250+1)},
		}
		be := Backend{Service: svc, Weight: 1}
		for j := range 10 {
			be.Endpoints = append(be.Endpoints, Endpoint{Address: fmt.Sprintf("10.%d.%d.%d:%d", 1+j, i/250, i%250+1, 8000+j)})
		}
		r.Backends = []Backend{be}
		t.HTTP = append(t.HTTP, r)
	}
	enc, err := Encode(t)
	if err != nil {
		b.Fatal(err)
	}
	return enc
}

// BenchmarkDecodeLargeTable is Decode against the encoding/json Decoder it
// replaced (see UnmarshalStrict).
func BenchmarkDecodeLargeTable(b *testing.B) {
	enc := largeEncoded(b)
	b.Run("nodemesh", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(enc)))
		for b.Loop() {
			if _, err := Decode(enc); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(enc)))
		for b.Loop() {
			dec := json.NewDecoder(bytes.NewReader(enc))
			dec.DisallowUnknownFields()
			var t Table
			if err := dec.Decode(&t); err != nil {
				b.Fatal(err)
			}
		}
	})
}
