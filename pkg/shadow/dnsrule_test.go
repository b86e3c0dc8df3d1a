package shadow

import (
	"testing"

	"k8s.io/apimachinery/pkg/types"
)

func TestNeedsExactDNSRule(t *testing.T) {
	for _, tt := range []struct {
		ns, name, shadow string
		want             bool
	}{
		{"test", "web", "web--test", false},
		{"c", "a--b", "a--b--c", false}, // the answer rewrite splits at the last "--": right
		{"team--a", "api", "api--team--a", true},
		{"test", "web", "web--test-0123456789", true},
		{"c", "a--b", "a--b--c-ba5996911a", true},
	} {
		if got := NeedsExactDNSRule(types.NamespacedName{Namespace: tt.ns, Name: tt.name}, tt.shadow); got != tt.want {
			t.Errorf("NeedsExactDNSRule(%s/%s, %s) = %v, want %v", tt.ns, tt.name, tt.shadow, got, tt.want)
		}
	}
}
