package dns

import (
	"fmt"
	"testing"

	"k8s.io/apimachinery/pkg/types"
)

func manyRules(n int) []ExactRule {
	rules := make([]ExactRule, n)
	for i := range rules {
		rules[i] = ExactRule{
			Service: types.NamespacedName{Namespace: fmt.Sprintf("namespace-%05d", i), Name: "a-rather-long-service-name"},
			Shadow:  fmt.Sprintf("a-rather-long-service-name-namespace-%05d-0123456789", i),
		}
	}
	return rules
}

// BenchmarkPatch measures a patch of the default Corefile with n exact
// rules and three domains, and reports the Corefile's size.
func BenchmarkPatch(b *testing.B) {
	base := `.:53 {
    errors
    kubernetes cluster.local in-addr.arpa ip6.arpa {
       pods insecure
       fallthrough in-addr.arpa ip6.arpa
    }
    forward . /etc/resolv.conf
    cache 30
    reload
}
`
	for _, n := range []int{0, 100, 1000} {
		b.Run(fmt.Sprintf("rules=%d", n), func(b *testing.B) {
			opts := Options{Aliases: KnownAliases, ExactRules: manyRules(n)}
			var out string
			for b.Loop() {
				var err error
				if out, err = Patch(base, opts); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(out)), "corefile-bytes")
		})
	}
}

// TestPatchTooLarge refuses a Corefile that no ConfigMap can hold.
func TestPatchTooLarge(t *testing.T) {
	_, err := Patch(".:53 {\n    kubernetes cluster.local\n}\n", Options{Aliases: KnownAliases, ExactRules: manyRules(3000)})
	if err == nil {
		t.Fatal("a Corefile over 1 MB was accepted")
	}
	t.Log(err)
}
