package table

import (
	"fmt"
	"reflect"
	"testing"
)

// TestEqualSeesEveryField: in a route with every field set, each change
// of one field (a leaf value changed; a list made nil, empty or longer; an
// optional setting made absent) makes Equal false, as it does
// reflect.DeepEqual. A field added to the route types without being
// compared by Equal fails here.
func TestEqualSeesEveryField(t *testing.T) {
	checkEveryField(t, (*HTTPRoute).Equal)
	checkEveryField(t, (*StreamRoute).Equal)
}

func checkEveryField[T any](t *testing.T, equal func(*T, *T) bool) {
	t.Helper()
	fresh := func() *T {
		v := new(T)
		n := 0
		fill(reflect.ValueOf(v).Elem(), &n)
		return v
	}
	a := fresh()
	if !equal(a, fresh()) || !equal(a, a) {
		t.Fatalf("%T: Equal is false for equal values", a)
	}
	changes := 0
	for target := 0; ; target++ {
		b := fresh()
		n := 0
		what, ok := mutate(reflect.ValueOf(b).Elem(), target, &n, fmt.Sprintf("%T", *b))
		if !ok {
			break
		}
		changes++
		if deep := reflect.DeepEqual(a, b); deep || equal(a, b) {
			t.Errorf("%s: Equal %v, reflect.DeepEqual %v; want both false", what, equal(a, b), deep)
		}
	}
	if changes < 20 {
		t.Fatalf("%T: only %d changes tried", *a, changes)
	}
}

// fill sets every field of v, recursively, to values that differ from
// each other: lists get two elements, optional settings a value.
func fill(v reflect.Value, n *int) {
	*n++
	switch v.Kind() {
	case reflect.String:
		v.SetString(fmt.Sprintf("s%d", *n))
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(int64(*n))
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(uint64(*n))
	case reflect.Float32, reflect.Float64:
		v.SetFloat(float64(*n) + 0.5)
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fill(v.Elem(), n)
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 2, 2))
		for i := range 2 {
			fill(v.Index(i), n)
		}
	case reflect.Struct:
		for i := range v.NumField() {
			fill(v.Field(i), n)
		}
	default:
		panic(fmt.Sprintf("fill: no rule for %s", v.Type()))
	}
}

// mutate applies the target-th change of a depth-first walk of v and says
// what it changed; false when v has fewer changes.
func mutate(v reflect.Value, target int, n *int, path string) (string, bool) {
	try := func(what string, apply func()) (string, bool) {
		if *n == target {
			apply()
			return path + ": " + what, true
		}
		*n++
		return "", false
	}
	switch v.Kind() {
	case reflect.Pointer:
		if s, ok := try("absent", func() { v.Set(reflect.Zero(v.Type())) }); ok {
			return s, true
		}
		return mutate(v.Elem(), target, n, path)
	case reflect.Slice:
		for _, m := range []struct {
			what  string
			apply func()
		}{
			{"nil", func() { v.Set(reflect.Zero(v.Type())) }},
			{"empty", func() { v.Set(reflect.MakeSlice(v.Type(), 0, 0)) }},
			{"one more", func() { v.Set(reflect.Append(v, v.Index(0))) }},
		} {
			if s, ok := try(m.what, m.apply); ok {
				return s, true
			}
		}
		for i := range v.Len() {
			if s, ok := mutate(v.Index(i), target, n, fmt.Sprintf("%s[%d]", path, i)); ok {
				return s, true
			}
		}
		return "", false
	case reflect.Struct:
		for i := range v.NumField() {
			if s, ok := mutate(v.Field(i), target, n, path+"."+v.Type().Field(i).Name); ok {
				return s, true
			}
		}
		return "", false
	}
	return try("changed", func() {
		switch v.Kind() {
		case reflect.String:
			v.SetString(v.String() + "x")
		case reflect.Bool:
			v.SetBool(!v.Bool())
		case reflect.Float32, reflect.Float64:
			v.SetFloat(v.Float() + 1)
		case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
			v.SetUint(v.Uint() + 1)
		default:
			v.SetInt(v.Int() + 1)
		}
	})
}

// TestEqualSharedLists: lists shared between two routes (as the builders
// share them between versions) are equal without being walked, and equal
// lists in different arrays are equal too.
func TestEqualSharedLists(t *testing.T) {
	a := &HTTPRoute{Hosts: []string{"web.shop.mesh"}, Backends: []Backend{{Service: ServiceRef{"shop", "web"}, Weight: 1, Endpoints: []Endpoint{{Address: "10.0.0.1:80"}}}}}
	shared := *a
	if !a.Equal(&shared) {
		t.Error("a route with the same lists differs")
	}
	copied := shared
	copied.Backends = []Backend{{Service: ServiceRef{"shop", "web"}, Weight: 1, Endpoints: []Endpoint{{Address: "10.0.0.1:80"}}}}
	if !a.Equal(&copied) {
		t.Error("a route with equal lists in other arrays differs")
	}
}
