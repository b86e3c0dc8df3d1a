package dns

import (
	"context"
	"fmt"
	"path"
	"sort"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// Provider is the cluster DNS server the patcher found.
type Provider string

// The providers the patcher knows.
const (
	CoreDNS Provider = "CoreDNS"
	KubeDNS Provider = "kube-dns"
)

// Names the patcher looks for in the DNS namespace.
const (
	// CustomConfigMap is the AKS convention: a ConfigMap mounted next to the
	// Corefile whose "*.server" keys the Corefile imports. When the CoreDNS
	// Deployment mounts it, the patch goes there and the main Corefile
	// (which AKS manages) is not touched.
	CustomConfigMap = "coredns-custom"
	// CustomKey is the key the patch writes in CustomConfigMap.
	CustomKey = "nodemesh.server"
	// KubeDNSConfigMap is kube-dns's optional ConfigMap, which holds
	// stubDomains.
	KubeDNSConfigMap = "kube-dns"
)

// deploymentSelectors find the DNS Deployment, in order; most distributions
// set the first, some only the second.
var deploymentSelectors = []string{"k8s-app=kube-dns", "kubernetes.io/name=CoreDNS"}

// deploymentNames are tried by name when no label matches.
var deploymentNames = []string{"coredns", "kube-dns"}

// target is what discovery found: the DNS Deployment and where its
// configuration lives.
type target struct {
	provider   Provider
	deployment *appsv1.Deployment
	// configMap and key hold the Corefile (CoreDNS) or stubDomains
	// (kube-dns, key unused).
	configMap string
	key       string
	// custom is CustomConfigMap when the Deployment mounts it, else "".
	custom string
	// dnsPort is CoreDNS's -dns.port, or 0.
	dnsPort int
}

// discover finds the DNS Deployment in ns and its ConfigMaps.
func discover(ctx context.Context, c kubernetes.Interface, ns string) (*target, error) {
	byName := map[string]*appsv1.Deployment{}
	for _, sel := range deploymentSelectors {
		list, err := c.AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{LabelSelector: sel})
		if err != nil {
			return nil, fmt.Errorf("listing Deployments in %s with label %s: %w", ns, sel, err)
		}
		for i := range list.Items {
			byName[list.Items[i].Name] = &list.Items[i]
		}
	}
	if len(byName) == 0 {
		for _, name := range deploymentNames {
			d, err := c.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
			if apierrors.IsNotFound(err) {
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("getting Deployment %s/%s: %w", ns, name, err)
			}
			byName[d.Name] = d
			break
		}
	}
	var cores, kubes []*appsv1.Deployment
	for _, d := range byName {
		switch classify(d) {
		case CoreDNS:
			cores = append(cores, d)
		case KubeDNS:
			kubes = append(kubes, d)
		}
	}
	pick := func(ds []*appsv1.Deployment, preferred string) (*appsv1.Deployment, error) {
		sort.Slice(ds, func(i, j int) bool { return ds[i].Name < ds[j].Name })
		for _, d := range ds {
			if d.Name == preferred {
				return d, nil
			}
		}
		if len(ds) == 1 {
			return ds[0], nil
		}
		names := make([]string, len(ds))
		for i, d := range ds {
			names[i] = d.Name
		}
		return nil, fmt.Errorf("several DNS Deployments in %s (%s) and none is named %q; nodemesh will not guess", ns, strings.Join(names, ", "), preferred)
	}
	switch {
	case len(cores) > 0:
		d, err := pick(cores, "coredns")
		if err != nil {
			return nil, err
		}
		return coreDNSTarget(d)
	case len(kubes) > 0:
		d, err := pick(kubes, "kube-dns")
		if err != nil {
			return nil, err
		}
		return kubeDNSTarget(d), nil
	case len(byName) > 0:
		return nil, fmt.Errorf("the DNS Deployment in %s runs neither CoreDNS nor kube-dns", ns)
	}
	return nil, fmt.Errorf("no DNS Deployment in namespace %s: looked for the labels %s, then the names %s",
		ns, strings.Join(deploymentSelectors, " and "), strings.Join(deploymentNames, " and "))
}

// classify tells CoreDNS from kube-dns by the containers: kubeadm labels
// CoreDNS k8s-app=kube-dns too.
func classify(d *appsv1.Deployment) Provider {
	for _, c := range d.Spec.Template.Spec.Containers {
		image := strings.ToLower(c.Image)
		if strings.Contains(image, "coredns") || c.Name == "coredns" || confPath(c) != "" {
			return CoreDNS
		}
	}
	for _, c := range d.Spec.Template.Spec.Containers {
		if c.Name == "kubedns" || strings.Contains(strings.ToLower(c.Image), "kube-dns") {
			return KubeDNS
		}
	}
	return ""
}

// coreDNSContainer is the container that runs CoreDNS.
func coreDNSContainer(d *appsv1.Deployment) *corev1.Container {
	cs := d.Spec.Template.Spec.Containers
	for i := range cs {
		if strings.Contains(strings.ToLower(cs[i].Image), "coredns") || cs[i].Name == "coredns" || confPath(cs[i]) != "" {
			return &cs[i]
		}
	}
	return nil
}

// flagValue returns the value of a Go flag ("-name v", "-name=v", or with
// two dashes) from a container's command and args.
func flagValue(c corev1.Container, name string) string {
	args := append(append([]string{}, c.Command...), c.Args...)
	for i, a := range args {
		trimmed := strings.TrimLeft(a, "-")
		if trimmed == a {
			continue
		}
		if v, ok := strings.CutPrefix(trimmed, name+"="); ok {
			return v
		}
		if trimmed == name && i+1 < len(args) {
			return args[i+1]
		}
	}
	return ""
}

func confPath(c corev1.Container) string { return flagValue(c, "conf") }

// coreDNSTarget finds the Corefile's ConfigMap through the Deployment's
// volumes: the volume mounted where -conf points, else the one ConfigMap
// volume other than coredns-custom.
func coreDNSTarget(d *appsv1.Deployment) (*target, error) {
	t := &target{provider: CoreDNS, deployment: d, key: "Corefile"}
	c := coreDNSContainer(d)
	vols := map[string]*corev1.ConfigMapVolumeSource{}
	var main []string
	for _, v := range d.Spec.Template.Spec.Volumes {
		if v.ConfigMap == nil {
			continue
		}
		vols[v.Name] = v.ConfigMap
		if v.ConfigMap.Name == CustomConfigMap {
			t.custom = CustomConfigMap
			continue
		}
		main = append(main, v.Name)
	}
	if c != nil {
		if p, err := strconv.Atoi(flagValue(*c, "dns.port")); err == nil {
			t.dnsPort = p
		}
		if conf := confPath(*c); conf != "" {
			for _, m := range c.VolumeMounts {
				src, ok := vols[m.Name]
				if !ok || src.Name == CustomConfigMap {
					continue
				}
				file := ""
				switch {
				case m.SubPath != "" && m.MountPath == conf:
					file = m.SubPath
				case path.Dir(conf) == path.Clean(m.MountPath):
					file = path.Base(conf)
				default:
					continue
				}
				t.configMap, t.key = src.Name, keyFor(src, file)
				return t, nil
			}
		}
	}
	if len(main) == 1 {
		src := vols[main[0]]
		t.configMap, t.key = src.Name, keyFor(src, "Corefile")
		return t, nil
	}
	return nil, fmt.Errorf("cannot tell which ConfigMap of Deployment %s/%s holds the Corefile: looked for the volume mounted at its -conf path, then for a single ConfigMap volume (found %d)", d.Namespace, d.Name, len(main))
}

// keyFor maps a file name in a ConfigMap volume back to its key.
func keyFor(src *corev1.ConfigMapVolumeSource, file string) string {
	for _, it := range src.Items {
		if it.Path == file {
			return it.Key
		}
	}
	return file
}

// kubeDNSTarget finds kube-dns's ConfigMap: its ConfigMap volume, or the
// conventional name, which kube-dns reads even when absent (optional).
func kubeDNSTarget(d *appsv1.Deployment) *target {
	t := &target{provider: KubeDNS, deployment: d, configMap: KubeDNSConfigMap, key: "stubDomains"}
	for _, v := range d.Spec.Template.Spec.Volumes {
		if v.ConfigMap != nil {
			t.configMap = v.ConfigMap.Name
			break
		}
	}
	return t
}
