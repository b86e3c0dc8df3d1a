// Package snapshot defines the one input of the topology builder: a plain,
// point-in-time copy of every object the controller watches. The controller
// fills it from its listers (the only place that reads them); the builders
// never talk to the API.
package snapshot

import (
	accessv1alpha3 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/access/v1alpha3"
	specsv1alpha4 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/specs/v1alpha4"
	splitv1alpha4 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/split/v1alpha4"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/types"
)

// Snapshot is every watched object at one instant. Objects are shared with
// the informer caches and must not be modified.
type Snapshot struct {
	// Services are the user services, already filtered by the watch and
	// ignore namespace settings. Shadow services are not in this list.
	Services []*corev1.Service
	// EndpointSlices are the slices of Services, from the same namespaces.
	EndpointSlices []*discoveryv1.EndpointSlice
	// Pods are every pod with an IP, in the watched namespaces (for named
	// target ports and source identity), in the compact form the
	// controller caches them in (see Pod).
	Pods []*Pod
	// Nodes give each endpoint its zone.
	Nodes []*corev1.Node
	// ShadowServices are the shadow services that exist now in the mesh
	// namespace. Port allocations are read back from them, so a restart
	// keeps every allocation.
	ShadowServices []*corev1.Service

	// TrafficSplits are converted to v1alpha4 from whichever served version
	// they were read in. Nil when SMI is off.
	TrafficSplits   []*splitv1alpha4.TrafficSplit
	HTTPRouteGroups []*specsv1alpha4.HTTPRouteGroup
	TCPRoutes       []*specsv1alpha4.TCPRoute
	UDPRoutes       []*specsv1alpha4.UDPRoute
	TrafficTargets  []*accessv1alpha3.TrafficTarget
	// TrafficTargetPorts holds spec.destination.port of the TrafficTargets
	// that set it, by TrafficTarget namespace/name. smi-sdk-go's access
	// v1alpha3 type has no port field, so the controller reads TrafficTargets
	// through v1alpha2 (nodemesh's CRD gives both the field). A missing entry
	// means every port. (Not in JSON:
	// encoding/json cannot encode struct map keys.)
	TrafficTargetPorts map[types.NamespacedName]int32 `json:"-"`

	// SMI says which SMI groups and versions the apiserver serves.
	SMI SMIStatus
}

// SMIStatus records the SMI API versions discovery found. An empty version
// means the group is not served and its features are off.
type SMIStatus struct {
	// Split is the TrafficSplit version read ("v1alpha4", "v1alpha3",
	// "v1alpha2"), or "".
	Split string `json:"split"`
	// Specs is the HTTPRouteGroup/TCPRoute/UDPRoute version read, or "".
	Specs string `json:"specs"`
	// Access is the TrafficTarget version read, or "".
	Access string `json:"access"`
}
