package controller

import (
	specsv1alpha4 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/specs/v1alpha4"
	specsscheme "github.com/servicemeshinterface/smi-sdk-go/pkg/gen/client/specs/clientset/versioned/scheme"
)

// smi-sdk-go v0.5.0 forgets to register UDPRoute (and its list) in the
// specs v1alpha4 scheme, so its generated client decodes a UDPRoute list
// but no watch event: the UDPRoute informer's watch fails, relists about
// once a minute, and UDPRoute changes arrive a minute late. Registering the
// two types in the clientset's scheme, which its codecs consult on every
// decode, makes the generated informer work.
func init() {
	gv := specsv1alpha4.SchemeGroupVersion
	if !specsscheme.Scheme.Recognizes(gv.WithKind("UDPRoute")) {
		specsscheme.Scheme.AddKnownTypes(gv, &specsv1alpha4.UDPRoute{}, &specsv1alpha4.UDPRouteList{})
	}
}
