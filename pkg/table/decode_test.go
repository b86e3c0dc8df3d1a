package table

import (
	"reflect"
	"strings"
	"testing"
)

func TestDecodeRoundTrip(t *testing.T) {
	in := validTable()
	in.Version = 42
	b, err := Encode(in)
	if err != nil {
		t.Fatal(err)
	}
	out, err := Decode(b)
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	if !reflect.DeepEqual(in, out) {
		t.Fatalf("round trip differs:\n in %+v\nout %+v", in, out)
	}
}

func TestDecodeRejects(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"unknown field", `{"schema":1,"version":1,"acl":false,"routes":[]}`, `unknown object member name "routes"`},
		{"trailing data", `{"schema":1} {"schema":1}`, "after top-level value"},
		{"wrong type", `{"schema":"one"}`, `unmarshal JSON string into Go int within "/schema"`},
		{"truncated", `{"schema":1,"http":[`, "unexpected EOF"},
		{"empty", ``, "unexpected EOF"},
		// encoding/json would take the last value, or bind the key to
		// "acl" whatever its case: both would hide a mistake in a rule.
		{"duplicate field", `{"schema":1,"acl":true,"acl":false}`, `duplicate object member name "acl"`},
		{"key in another case", `{"schema":1,"ACL":true}`, `unknown object member name "ACL"`},
		{"invalid UTF-8", "{\"schema\":1,\"http\":[{\"hosts\":[\"a\xffb\"]}]}", "invalid UTF-8"},
		{"nested unknown field", `{"schema":1,"http":[{"port":80,"hostz":[]}]}`, `unknown object member name "hostz" within "/http/0"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Decode([]byte(tt.in))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Decode(%q) = %v, want error containing %q", tt.in, err, tt.want)
			}
		})
	}
}

// FuzzDecode checks that no input makes Decode or Validate panic, and that
// the canonical encoding of every table they accept is a fixed point:
// decoding and re-encoding it gives the same bytes. (Comparing structs would
// trip over an empty slice that omitempty turns into nil.)
func FuzzDecode(f *testing.F) {
	good, _ := Encode(validTable())
	f.Add(good)
	withPolicy, _ := Encode(policyTable())
	f.Add(withPolicy)
	f.Add([]byte(`{"schema":1}`))
	f.Add([]byte(`{"schema":1,"http":[{"service":{"namespace":"a","name":"b"},"port":80,"hosts":["b.a.mesh"],"scheme":"h2c","backends":[]}]}`))
	f.Add([]byte(`null`))
	f.Add([]byte(`{"schema":1,"tcp":[{"proxyPort":10000,"backends":[{"weight":0,"endpoints":[{"address":"[::1]:1"}]}]}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		tb, err := Decode(b)
		if err != nil {
			return
		}
		if Validate(tb) != nil {
			return
		}
		again, err := Encode(tb)
		if err != nil {
			t.Fatalf("Encode of a valid table: %v", err)
		}
		tb2, err := Decode(again)
		if err != nil {
			t.Fatalf("Decode of an encoded valid table: %v", err)
		}
		if err := Validate(tb2); err != nil {
			t.Fatalf("a valid table no longer validates after a round trip: %v", err)
		}
		third, _ := Encode(tb2)
		if string(third) != string(again) {
			t.Fatalf("encoding is not stable:\n%s\n%s", again, third)
		}
	})
}
