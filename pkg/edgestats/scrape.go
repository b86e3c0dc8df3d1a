package edgestats

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"

	"github.com/nodemesh/nodemesh/pkg/shadow"
)

// DefaultAdminPort is the proxies' admin port (team contract), used when a
// proxy pod declares no port named "admin".
const DefaultAdminPort = 7001

// maxMetrics bounds one proxy's /metrics answer.
const maxMetrics = 64 << 20

// Target is one proxy to scrape.
type Target struct {
	// Name identifies the proxy in messages: its node, pod or URL.
	Name string
	// Fetch returns the proxy's /metrics text.
	Fetch func(ctx context.Context) ([]byte, error)
}

// Scrape fetches every target in parallel and sums them into one Sample.
// Targets that fail are skipped and reported in the error, so one dead
// proxy does not blank the view; the Sample holds what was read.
func Scrape(ctx context.Context, targets []Target) (*Sample, error) {
	type result struct {
		body []byte
		err  error
	}
	results := make([]result, len(targets))
	var wg sync.WaitGroup
	for i, t := range targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b, err := t.Fetch(ctx)
			results[i] = result{b, err}
		}()
	}
	wg.Wait()
	s := NewSample()
	var errs []error
	for i, r := range results {
		if r.err == nil {
			r.err = s.Add(targets[i].Name, bytes.NewReader(r.body))
		}
		if r.err != nil {
			errs = append(errs, fmt.Errorf("proxy %s: %w", targets[i].Name, r.err))
		}
	}
	if len(errs) == len(targets) && len(targets) > 0 {
		s.EdgeSeries = false // nothing was read
	}
	return s, errors.Join(errs...)
}

// URLTargets scrapes proxies by admin URL ("http://10.0.0.5:7001"); /metrics
// is appended.
func URLTargets(urls []string, client *http.Client) []Target {
	if client == nil {
		client = &http.Client{Timeout: 5 * time.Second}
	}
	out := make([]Target, 0, len(urls))
	for _, u := range urls {
		u = strings.TrimRight(u, "/")
		out = append(out, Target{Name: u, Fetch: func(ctx context.Context) ([]byte, error) {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, u+"/metrics", nil)
			if err != nil {
				return nil, err
			}
			resp, err := client.Do(req)
			if err != nil {
				return nil, err
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return nil, fmt.Errorf("GET /metrics: HTTP %d", resp.StatusCode)
			}
			return io.ReadAll(io.LimitReader(resp.Body, maxMetrics))
		}})
	}
	return out
}

// ProxyPods lists the running proxy pods of the mesh namespace (selected by
// the proxy labels shadow services use), sorted by name.
func ProxyPods(ctx context.Context, kube kubernetes.Interface, meshNamespace string) ([]corev1.Pod, error) {
	list, err := kube.CoreV1().Pods(meshNamespace).List(ctx, metav1.ListOptions{
		LabelSelector: labels.SelectorFromSet(shadow.ProxySelector).String(),
	})
	if err != nil {
		return nil, fmt.Errorf("listing the proxy pods in %s: %w", meshNamespace, err)
	}
	var out []corev1.Pod
	for _, p := range list.Items {
		if p.Status.Phase == corev1.PodRunning && p.Status.PodIP != "" {
			out = append(out, p)
		}
	}
	slices.SortFunc(out, func(a, b corev1.Pod) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// AdminPort is the pod's container port named "admin", else
// DefaultAdminPort.
func AdminPort(p *corev1.Pod) int32 {
	for _, c := range p.Spec.Containers {
		for _, port := range c.Ports {
			if port.Name == "admin" {
				return port.ContainerPort
			}
		}
	}
	return DefaultAdminPort
}

// PodURLs returns each proxy pod's admin URL (http://<pod IP>:<admin
// port>), for a scraper that reaches pod IPs (the controller).
func PodURLs(pods []corev1.Pod) []string {
	out := make([]string, 0, len(pods))
	for i := range pods {
		host := pods[i].Status.PodIP
		if strings.Contains(host, ":") {
			host = "[" + host + "]"
		}
		out = append(out, "http://"+host+":"+strconv.Itoa(int(AdminPort(&pods[i]))))
	}
	return out
}

// PodProxyTargets scrapes proxy pods through the apiserver's pod proxy,
// for a scraper outside the cluster (`nodemesh top` with a kubeconfig).
func PodProxyTargets(kube kubernetes.Interface, pods []corev1.Pod) []Target {
	out := make([]Target, 0, len(pods))
	for i := range pods {
		p := pods[i]
		name := p.Name
		if p.Spec.NodeName != "" {
			name = p.Spec.NodeName + " (" + p.Name + ")"
		}
		port := strconv.Itoa(int(AdminPort(&p)))
		out = append(out, Target{Name: name, Fetch: func(ctx context.Context) ([]byte, error) {
			return kube.CoreV1().Pods(p.Namespace).ProxyGet("http", p.Name, port, "metrics", nil).DoRaw(ctx)
		}})
	}
	return out
}
