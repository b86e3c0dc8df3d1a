package status

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// WriteText prints each service as a block of "field: value" lines:
//
//	shop/web
//	  mesh names:    web.shop.mesh
//	  traffic type:  http
//	  shadow:        nodemesh/web--shop 10.96.12.7
//	  ports:         80/http
//	  endpoints:     node-a: 2 ready (10.244.1.2:80, 10.244.1.3:80)
//	  split canary:  web-v1 weight 80 intended 80.0% observed 79.4% (794 requests)
//	                 web-v2 weight 20 intended 20.0% observed 20.6% (206 requests)
//	  access:        not enforced: every source may call
func WriteText(w io.Writer, services []Service) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for i, s := range services {
		if i > 0 {
			fmt.Fprintln(tw)
		}
		fmt.Fprintf(tw, "%s/%s\n", s.Namespace, s.Name)
		field := func(name string, values ...string) {
			if len(values) == 0 {
				values = []string{"none"}
			}
			for j, v := range values {
				if j == 0 {
					fmt.Fprintf(tw, "  %s:\t%s\n", name, v)
				} else {
					fmt.Fprintf(tw, "  \t%s\n", v)
				}
			}
		}
		field("mesh names", strings.Join(s.MeshNames, ", "))
		field("traffic type", s.TrafficType)
		ips := strings.Join(s.ShadowClusterIPs, ", ")
		if ips == "" {
			ips = "(no ClusterIP yet)"
		}
		field("shadow", s.Shadow+" "+ips)
		var ports []string
		for _, p := range s.Ports {
			v := fmt.Sprintf("%d/%s", p.Port, p.Protocol)
			if p.ProxyPort != 0 {
				v += fmt.Sprintf(" (proxy port %d)", p.ProxyPort)
			}
			ports = append(ports, v)
		}
		field("ports", strings.Join(ports, ", "))
		var eps []string
		for _, n := range s.Endpoints {
			v := fmt.Sprintf("%s: %d ready", n.Node, n.Ready)
			if n.NotReady > 0 {
				v += fmt.Sprintf(", %d not ready", n.NotReady)
			}
			eps = append(eps, v+" ("+strings.Join(n.Addresses, ", ")+")")
		}
		field("endpoints", eps...)
		if s.Split != nil {
			var lines []string
			for _, b := range s.Split.Backends {
				obs := "observed n/a"
				if s.Split.Observed {
					obs = fmt.Sprintf("observed %.1f%% (%.0f requests)", b.Observed, b.Requests)
				}
				lines = append(lines, fmt.Sprintf("%s weight %d intended %.1f%% %s", b.Service, b.Weight, b.Intended, obs))
			}
			field("split "+s.Split.Name, lines...)
		}
		switch {
		case !s.Access.Enforced:
			field("access", "not enforced: every source may call")
		case len(s.Access.Rules) == 0:
			field("access", "enforced, and no TrafficTarget allows any source: every call is refused")
		default:
			field("access", s.Access.Rules...)
		}
		if len(s.Errors) > 0 {
			field("errors", s.Errors...)
		}
	}
	return tw.Flush()
}

// WriteJSON prints the services as one JSON array.
func WriteJSON(w io.Writer, services []Service) error {
	if services == nil {
		services = []Service{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(services)
}
