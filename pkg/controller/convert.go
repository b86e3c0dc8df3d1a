package controller

import (
	splitv1alpha2 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/split/v1alpha2"
	splitv1alpha3 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/split/v1alpha3"
	splitv1alpha4 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/split/v1alpha4"
)

// The builders read TrafficSplits only as v1alpha4. Older served versions are
// converted here, at the edge. v1alpha3 has the same fields; v1alpha2 has no
// matches. The informer's object is never modified: ObjectMeta is copied
// (the maps it holds are shared read-only, like every snapshot object).

func splitFromV1alpha3(in *splitv1alpha3.TrafficSplit) *splitv1alpha4.TrafficSplit {
	out := &splitv1alpha4.TrafficSplit{ObjectMeta: in.ObjectMeta}
	out.APIVersion, out.Kind = splitv1alpha4.SchemeGroupVersion.String(), "TrafficSplit"
	out.Spec.Service = in.Spec.Service
	out.Spec.Matches = in.Spec.Matches
	for _, b := range in.Spec.Backends {
		out.Spec.Backends = append(out.Spec.Backends, splitv1alpha4.TrafficSplitBackend{Service: b.Service, Weight: b.Weight})
	}
	return out
}

func splitFromV1alpha2(in *splitv1alpha2.TrafficSplit) *splitv1alpha4.TrafficSplit {
	out := &splitv1alpha4.TrafficSplit{ObjectMeta: in.ObjectMeta}
	out.APIVersion, out.Kind = splitv1alpha4.SchemeGroupVersion.String(), "TrafficSplit"
	out.Spec.Service = in.Spec.Service
	for _, b := range in.Spec.Backends {
		out.Spec.Backends = append(out.Spec.Backends, splitv1alpha4.TrafficSplitBackend{Service: b.Service, Weight: b.Weight})
	}
	return out
}
