package smi

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"path"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	structuralschema "k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/apimachinery/pkg/version"
	"sigs.k8s.io/yaml"
)

// relation is how a CRD version relates to the storage version of its CRD
// under conversion strategy None, where serving a version means relabelling
// the stored object and pruning it to that version's schema.
type relation int

const (
	// storage is the stored version.
	storage relation = iota
	// identical versions have the storage schema: lossless both ways.
	identical
	// subset versions are the storage schema minus some fields: what they
	// accept is stored as written; those fields are dropped in their view.
	subset
	// notServed versions cannot be served losslessly at all.
	notServed
)

// want is the decision for one CRD version; docs/smi.md states the same.
type want struct {
	rel relation
	// dropped are the storage fields a subset version lacks (dotted paths).
	dropped []string
	// forbidden are fields the version declares beyond the storage schema,
	// each refused by a `!has(self.<field>)` rule on its parent.
	forbidden []string
}

var decisions = map[string]map[string]want{
	"trafficsplits.split.smi-spec.io": {
		"v1alpha4": {rel: storage},
		"v1alpha3": {rel: identical},
		"v1alpha2": {rel: subset, dropped: []string{"spec.matches"}},
		// Its Quantity weight is narrowed to an integer, so as served it is
		// v1alpha2.
		"v1alpha1": {rel: subset, dropped: []string{"spec.matches"}},
	},
	"httproutegroups.specs.smi-spec.io": {
		"v1alpha4": {rel: storage},
		"v1alpha3": {rel: identical},
		"v1alpha2": {rel: notServed},
		"v1alpha1": {rel: notServed},
	},
	"tcproutes.specs.smi-spec.io": {
		"v1alpha4": {rel: storage},
		"v1alpha3": {rel: subset, dropped: []string{"spec.matches"}},
		"v1alpha2": {rel: subset, dropped: []string{"spec"}},
		"v1alpha1": {rel: subset, dropped: []string{"spec"}},
	},
	"udproutes.specs.smi-spec.io": {
		"v1alpha4": {rel: storage},
	},
	"traffictargets.access.smi-spec.io": {
		"v1alpha3": {rel: storage},
		// Both keep spec.destination.port (a nodemesh extension in v1alpha3).
		"v1alpha2": {rel: identical},
		"v1alpha1": {rel: notServed},
	},
}

func loadCRDs(t *testing.T) []*apiextensionsv1.CustomResourceDefinition {
	t.Helper()
	crds, err := CRDs()
	if err != nil {
		t.Fatal(err)
	}
	return crds
}

func TestCRDsCoverEveryDecidedKind(t *testing.T) {
	var got, wantNames []string
	for _, crd := range loadCRDs(t) {
		got = append(got, crd.Name)
	}
	for name := range decisions {
		wantNames = append(wantNames, name)
	}
	sort.Strings(wantNames)
	if !slices.Equal(got, wantNames) {
		t.Fatalf("CRDs in crds/: %v, want %v", got, wantNames)
	}
}

func TestEveryServedSchemaIsStructural(t *testing.T) {
	for _, crd := range loadCRDs(t) {
		for _, v := range crd.Spec.Versions {
			t.Run(crd.Name+"/"+v.Name, func(t *testing.T) {
				if v.Schema == nil || v.Schema.OpenAPIV3Schema == nil {
					t.Fatal("no schema; apiextensions.k8s.io/v1 requires one per version")
				}
				internal := &apiextensions.JSONSchemaProps{}
				if err := apiextensionsv1.Convert_v1_JSONSchemaProps_To_apiextensions_JSONSchemaProps(v.Schema.OpenAPIV3Schema, internal, nil); err != nil {
					t.Fatal(err)
				}
				s, err := structuralschema.NewStructural(internal)
				if err != nil {
					t.Fatalf("not structural: %v", err)
				}
				if errs := structuralschema.ValidateStructural(field.NewPath("openAPIV3Schema"), s); len(errs) > 0 {
					t.Fatalf("not structural: %v", errs.ToAggregate())
				}
			})
		}
	}
}

func TestStorageIsTheNewestVersionAndConversionIsNone(t *testing.T) {
	for _, crd := range loadCRDs(t) {
		t.Run(crd.Name, func(t *testing.T) {
			if crd.Spec.Conversion == nil || crd.Spec.Conversion.Strategy != apiextensionsv1.NoneConverter {
				t.Errorf("conversion %+v, want strategy None", crd.Spec.Conversion)
			}
			var names, stored []string
			for _, v := range crd.Spec.Versions {
				names = append(names, v.Name)
				if v.Storage {
					stored = append(stored, v.Name)
				}
			}
			sort.Slice(names, func(i, j int) bool { return version.CompareKubeAwareVersionStrings(names[i], names[j]) > 0 })
			if len(stored) != 1 || stored[0] != names[0] {
				t.Errorf("storage versions %v, want exactly the newest, %s", stored, names[0])
			}
		})
	}
}

func TestVersionsAreServedOnlyWhereNoneConversionIsLossless(t *testing.T) {
	for _, crd := range loadCRDs(t) {
		var stored *apiextensionsv1.JSONSchemaProps
		for _, v := range crd.Spec.Versions {
			if v.Storage {
				stored = v.Schema.OpenAPIV3Schema
			}
		}
		for _, v := range crd.Spec.Versions {
			t.Run(crd.Name+"/"+v.Name, func(t *testing.T) {
				w, ok := decisions[crd.Name][v.Name]
				if !ok {
					t.Fatal("version has no recorded decision")
				}
				if served := w.rel != notServed; v.Served != served {
					t.Fatalf("served %v, want %v", v.Served, served)
				}
				if w.rel == notServed || w.rel == storage {
					return
				}
				got := withoutDescriptions(v.Schema.OpenAPIV3Schema)
				for _, f := range w.forbidden {
					if err := removeForbidden(got, f); err != "" {
						t.Fatal(err)
					}
				}
				ref := withoutDescriptions(stored)
				var dropped []string
				prune(ref, got, "", &dropped)
				sort.Strings(dropped)
				if !slices.Equal(dropped, w.dropped) {
					t.Errorf("fields of the storage version missing here: %v, want %v", dropped, w.dropped)
				}
				if !reflect.DeepEqual(got, ref) {
					t.Errorf("schema differs from the storage version's beyond the dropped fields:\n%s", firstDifference(got, ref))
				}
				if w.rel == identical && len(w.dropped) > 0 {
					t.Error("an identical version drops nothing")
				}
			})
		}
	}
}

// withoutDescriptions copies s without descriptions, which do not affect
// what is stored.
func withoutDescriptions(s *apiextensionsv1.JSONSchemaProps) *apiextensionsv1.JSONSchemaProps {
	c := s.DeepCopy()
	var strip func(p *apiextensionsv1.JSONSchemaProps)
	strip = func(p *apiextensionsv1.JSONSchemaProps) {
		if p == nil {
			return
		}
		p.Description = ""
		for k, child := range p.Properties {
			strip(&child)
			p.Properties[k] = child
		}
		if p.Items != nil {
			strip(p.Items.Schema)
		}
		if p.AdditionalProperties != nil {
			strip(p.AdditionalProperties.Schema)
		}
	}
	strip(c)
	return c
}

// prune removes from ref the properties that version lacks, recording their
// paths in dropped, as the apiserver's pruning does when it serves a stored
// object through version.
func prune(ref, version *apiextensionsv1.JSONSchemaProps, at string, dropped *[]string) {
	if ref == nil || version == nil {
		return
	}
	for name, child := range ref.Properties {
		p := strings.TrimPrefix(at+"."+name, ".")
		vchild, ok := version.Properties[name]
		if !ok {
			*dropped = append(*dropped, p)
			delete(ref.Properties, name)
			ref.Required = slices.DeleteFunc(ref.Required, func(r string) bool { return r == name })
			continue
		}
		prune(&child, &vchild, p, dropped)
		ref.Properties[name] = child
	}
	if len(ref.Properties) == 0 {
		ref.Properties = nil
	}
	if len(ref.Required) == 0 {
		ref.Required = nil
	}
	if ref.Items != nil && version.Items != nil {
		prune(ref.Items.Schema, version.Items.Schema, at+"[]", dropped)
	}
}

// removeForbidden deletes the field at dotted path f from s, after checking
// that its parent refuses it with a `!has(self.<field>)` rule, and deletes
// that rule. It returns a problem, or "".
func removeForbidden(s *apiextensionsv1.JSONSchemaProps, f string) string {
	name, rest, nested := strings.Cut(f, ".")
	if nested {
		child, ok := s.Properties[name]
		if !ok {
			return name + ": no such field"
		}
		problem := removeForbidden(&child, rest)
		s.Properties[name] = child
		return problem
	}
	if _, ok := s.Properties[name]; !ok {
		return name + ": no such field"
	}
	rule := "!has(self." + name + ")"
	i := slices.IndexFunc(s.XValidations, func(r apiextensionsv1.ValidationRule) bool { return r.Rule == rule })
	if i < 0 {
		return name + ": declared but not refused by the rule " + rule
	}
	s.XValidations = slices.Delete(s.XValidations, i, i+1)
	if len(s.XValidations) == 0 {
		s.XValidations = nil
	}
	delete(s.Properties, name)
	return ""
}

// firstDifference shows where the indented JSON of got and want first
// differ, with a few lines of context.
func firstDifference(got, want *apiextensionsv1.JSONSchemaProps) string {
	g, _ := json.MarshalIndent(got, "", "  ")
	w, _ := json.MarshalIndent(want, "", "  ")
	gl, wl := strings.Split(string(g), "\n"), strings.Split(string(w), "\n")
	for i := 0; i < len(gl) || i < len(wl); i++ {
		if i < len(gl) && i < len(wl) && gl[i] == wl[i] {
			continue
		}
		from := max(0, i-4)
		return fmt.Sprintf("got:\n%s\nwant (storage version):\n%s",
			strings.Join(gl[from:min(len(gl), i+3)], "\n"), strings.Join(wl[from:min(len(wl), i+3)], "\n"))
	}
	return "(no textual difference)"
}

func TestKustomizationListsEveryCRDFile(t *testing.T) {
	data, err := crdFiles.ReadFile("crds/kustomization.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var k struct {
		Resources []string `json:"resources"`
	}
	if err := yaml.Unmarshal(data, &k); err != nil {
		t.Fatal(err)
	}
	files, err := fs.Glob(crdFiles, "crds/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, f := range files {
		if base := path.Base(f); base != "kustomization.yaml" {
			want = append(want, base)
		}
	}
	got := slices.Sorted(slices.Values(k.Resources))
	if !slices.Equal(got, want) {
		t.Errorf("crds/kustomization.yaml lists %v; the folder holds %v", got, want)
	}
}
