package main

import (
	"slices"
	"testing"
)

func TestSplitArgs(t *testing.T) {
	short := map[string]string{"n": "namespace", "o": "output"}
	bools := boolOptions(&topConfig{})
	for _, tc := range []struct {
		args             []string
		flags, positions []string
	}{
		{[]string{"-n", "shop", "web"}, []string{"--namespace=shop"}, []string{"web"}},
		{[]string{"web", "-n", "shop", "-o", "json"}, []string{"--namespace=shop", "--output=json"}, []string{"web"}},
		{[]string{"-o=json", "--proxyurls=a,b", "--once", "x"}, []string{"--output=json", "--proxyurls=a,b", "--once"}, []string{"x"}},
		{[]string{"--controller-url", "http://c", "--", "-n"}, []string{"--controllerurl=http://c"}, []string{"-n"}},
		{[]string{"--help"}, []string{"--help"}, nil},
	} {
		flags, pos := splitArgs(tc.args, short, bools)
		if !slices.Equal(flags, tc.flags) || !slices.Equal(pos, tc.positions) {
			t.Errorf("splitArgs(%q) = %q, %q; want %q, %q", tc.args, flags, pos, tc.flags, tc.positions)
		}
	}
}
