package controller

import (
	"math"

	accessv1alpha2 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/access/v1alpha2"
	accessv1alpha3 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/access/v1alpha3"
	splitv1alpha2 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/split/v1alpha2"
	splitv1alpha3 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/split/v1alpha3"
	splitv1alpha4 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/split/v1alpha4"
)

// The builders read TrafficSplits only as v1alpha4, and TrafficTargets only
// as v1alpha3. Other served versions are converted here, at the edge. v1alpha3 has the same fields; v1alpha2 has no
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

// trafficTarget is a TrafficTarget as the builders read it (v1alpha3), with
// spec.destination.port, which smi-sdk-go's v1alpha3 type lacks (SMI
// dropped it; nodemesh's CRD keeps it, see smi/crds). It goes to
// Snapshot.TrafficTargetPorts.
type trafficTarget struct {
	*accessv1alpha3.TrafficTarget
	port int32 // 0: every port
}

// targetFromV1alpha2 converts a TrafficTarget read as v1alpha2: the same
// fields as v1alpha3, plus the destination port. A port outside int32 is
// passed on as one the builder refuses as not a port number.
func targetFromV1alpha2(in *accessv1alpha2.TrafficTarget) trafficTarget {
	out := &accessv1alpha3.TrafficTarget{ObjectMeta: in.ObjectMeta}
	out.APIVersion, out.Kind = accessv1alpha3.SchemeGroupVersion.String(), "TrafficTarget"
	out.Spec.Destination = subjectFromV1alpha2(in.Spec.Destination)
	for _, s := range in.Spec.Sources {
		out.Spec.Sources = append(out.Spec.Sources, subjectFromV1alpha2(s))
	}
	for _, r := range in.Spec.Rules {
		out.Spec.Rules = append(out.Spec.Rules, accessv1alpha3.TrafficTargetRule{Kind: r.Kind, Name: r.Name, Matches: r.Matches})
	}
	tt := trafficTarget{TrafficTarget: out}
	if p := in.Spec.Destination.Port; p != nil {
		tt.port = int32(max(min(*p, math.MaxInt32), math.MinInt32))
	}
	return tt
}

func subjectFromV1alpha2(s accessv1alpha2.IdentityBindingSubject) accessv1alpha3.IdentityBindingSubject {
	return accessv1alpha3.IdentityBindingSubject{Kind: s.Kind, Name: s.Name, Namespace: s.Namespace}
}
