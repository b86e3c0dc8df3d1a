// Package smi holds the SMI CustomResourceDefinitions that nodemesh installs
// (crds/, as apiextensions.k8s.io/v1) and example manifests that use them
// (examples/). The files are the product; this package embeds the CRDs so
// that Go code (tests, the demo) can install them without a path, and its
// tests pin the conversion claims that docs/smi.md makes.
package smi

import (
	"embed"
	"fmt"
	"io/fs"
	"path"
	"sort"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"sigs.k8s.io/yaml"
)

// crdFiles are the CRD manifests, one CRD per file. kustomization.yaml in
// the same folder is not a CRD and is skipped by CRDs.
//
//go:embed crds/*.yaml
var crdFiles embed.FS

// CRDs decodes the embedded CRD manifests, strictly (an unknown field is an
// error, so a misspelt schema keyword cannot slip through), sorted by name.
func CRDs() ([]*apiextensionsv1.CustomResourceDefinition, error) {
	names, err := fs.Glob(crdFiles, "crds/*.yaml")
	if err != nil {
		return nil, err
	}
	var crds []*apiextensionsv1.CustomResourceDefinition
	for _, name := range names {
		if path.Base(name) == "kustomization.yaml" {
			continue
		}
		data, err := crdFiles.ReadFile(name)
		if err != nil {
			return nil, err
		}
		crd := &apiextensionsv1.CustomResourceDefinition{}
		if err := yaml.UnmarshalStrict(data, crd); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		if crd.Kind != "CustomResourceDefinition" {
			return nil, fmt.Errorf("%s: kind %q, want CustomResourceDefinition", name, crd.Kind)
		}
		crds = append(crds, crd)
	}
	sort.Slice(crds, func(i, j int) bool { return crds[i].Name < crds[j].Name })
	return crds, nil
}
