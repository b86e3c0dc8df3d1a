package dns

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
)

// The patched region starts and ends with these comments, each alone on its
// line at the top level of the Corefile. Restore removes exactly the lines
// from the first to the second; everything outside them is the user's.
const (
	BeginMarker = "# nodemesh:begin"
	EndMarker   = "# nodemesh:end"
)

// beginLine is the full first line of the region; only its BeginMarker
// prefix is matched, so the explanation may change between releases.
const beginLine = BeginMarker + ` - added by "nodemesh dns patch"; "nodemesh dns restore" removes it. Edits between these markers are overwritten.`

// maxCorefile is what fits in a ConfigMap (1 MiB for all its data), less
// room for the other keys.
const maxCorefile = 1000 * 1000

// ErrUnparseable wraps every error about a Corefile the patcher will not
// touch: one CoreDNS could not read, or one whose markers were damaged.
var ErrUnparseable = errors.New("corefile left untouched")

// Listener is where CoreDNS serves the cluster domain. The mesh server
// blocks listen on the same port and address and forward what they rewrote
// to it, so the cluster's own kubernetes plugin answers: no second copy of
// it (and of its informers) runs, and nothing of its configuration, whose
// options changed between CoreDNS versions, is copied.
type Listener struct {
	// Port is the port in the key of the server block serving the cluster
	// domain, or 0 when the key names none (CoreDNS's default port).
	Port int
	// Bind is that block's bind directive, verbatim, or "" when it has none.
	Bind string
	// Host is the address the mesh blocks forward to: the first address that
	// bind names, or 127.0.0.1.
	Host string
}

// Patch returns corefile with the mesh server blocks for opts added between
// the markers, or with the region already there replaced. It returns the
// input unchanged when the region is already as opts want it, and an error
// wrapping ErrUnparseable when the Corefile cannot be edited safely.
func Patch(corefile string, opts Options) (string, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return "", err
	}
	cf, err := parseCorefile(corefile)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrUnparseable, err)
	}
	reg, err := findRegion(cf)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrUnparseable, err)
	}
	if err := checkConflicts(cf, reg, o.domains()); err != nil {
		return "", err
	}
	l := o.Listener
	if l == nil {
		found, err := findListener(cf, o.ClusterDomain)
		if err != nil {
			return "", err
		}
		l = &found
	}
	region := renderRegion(o, *l)
	var out string
	switch {
	case reg.present:
		out = corefile[:reg.begin] + region + corefile[reg.end:]
	case corefile == "" || strings.HasSuffix(corefile, "\n"):
		out = corefile + region + "\n"
	default:
		out = corefile + "\n" + region
	}
	if len(out) > maxCorefile {
		return "", fmt.Errorf("the patched Corefile would be %d bytes, over the %d a ConfigMap holds (%d exact rules for %d domains)", len(out), maxCorefile, len(o.ExactRules), len(o.domains()))
	}
	// What we add is checked like what we read: never write a Corefile that
	// CoreDNS could not load.
	if cf2, err := parseCorefile(out); err != nil {
		return "", fmt.Errorf("internal error: the patched Corefile does not parse: %v", err)
	} else if _, err := findRegion(cf2); err != nil {
		return "", fmt.Errorf("internal error: the patched Corefile's markers: %v", err)
	}
	return out, nil
}

// Restore returns corefile without the region Patch added: the lines from
// the begin marker to the end marker, and the newline Patch added before
// them when the file did not end with one. A Corefile without the region is
// returned as it is.
func Restore(corefile string) (string, error) {
	cf, err := parseCorefile(corefile)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrUnparseable, err)
	}
	reg, err := findRegion(cf)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrUnparseable, err)
	}
	if !reg.present {
		return corefile, nil
	}
	if reg.end < len(corefile) { // the newline after the end marker
		return corefile[:reg.begin] + corefile[reg.end+1:], nil
	}
	if reg.begin > 0 && corefile[reg.begin-1] == '\n' {
		return corefile[:reg.begin-1], nil
	}
	return corefile[:reg.begin], nil
}

// IsPatched reports whether corefile holds a region between the markers.
func IsPatched(corefile string) (bool, error) {
	cf, err := parseCorefile(corefile)
	if err != nil {
		return false, fmt.Errorf("%w: %v", ErrUnparseable, err)
	}
	reg, err := findRegion(cf)
	if err != nil {
		return false, fmt.Errorf("%w: %v", ErrUnparseable, err)
	}
	return reg.present, nil
}

// region locates the patched lines: begin is the start of the begin
// marker's line, end the end of the end marker's line (its newline or the
// end of the file).
type region struct {
	present    bool
	begin, end int
}

func (r region) contains(off int) bool { return r.present && off >= r.begin && off < r.end }

// findRegion finds the markers and checks that they still delimit one
// region at the top level.
func findRegion(cf *corefile) (region, error) {
	var begins, ends []comment
	for _, c := range cf.lex.comments {
		if !c.alone {
			continue
		}
		switch {
		case isMarker(c.text, BeginMarker):
			begins = append(begins, c)
		case isMarker(c.text, EndMarker):
			ends = append(ends, c)
		}
	}
	if len(begins) == 0 && len(ends) == 0 {
		return region{}, nil
	}
	if len(begins) != 1 || len(ends) != 1 {
		return region{}, fmt.Errorf("the nodemesh markers are damaged: found %d %q and %d %q lines, want one of each", len(begins), BeginMarker, len(ends), EndMarker)
	}
	b, e := begins[0], ends[0]
	if e.start < b.start {
		return region{}, fmt.Errorf("the nodemesh markers are damaged: %q (line %d) comes before %q (line %d)", EndMarker, e.line, BeginMarker, b.line)
	}
	for _, blk := range cf.blocks {
		first, last := blk.keys[0].start, blk.close.end
		for _, m := range []comment{b, e} {
			if m.start > first && m.start < last {
				return region{}, fmt.Errorf("the nodemesh markers are damaged: line %d is inside the server block %q", m.line, blk.keys[0].text)
			}
		}
	}
	end := strings.IndexByte(cf.text[e.start:], '\n')
	if end < 0 {
		end = len(cf.text)
	} else {
		end += e.start
	}
	return region{present: true, begin: b.lineStart, end: end}, nil
}

func isMarker(text, marker string) bool {
	if !strings.HasPrefix(text, marker) {
		return false
	}
	rest := text[len(marker):]
	return rest == "" || rest[0] == ' ' || rest[0] == '\t'
}

// checkConflicts refuses to add a server block for a zone that a block
// outside the region already serves: CoreDNS would refuse to start.
func checkConflicts(cf *corefile, reg region, domains []string) error {
	want := map[string]bool{}
	for _, d := range domains {
		want[d] = true
	}
	for _, blk := range cf.blocks {
		if reg.contains(blk.keys[0].start) {
			continue
		}
		for _, a := range blk.addresses() {
			if want[a.zone] {
				hint := ""
				if strings.Contains(cf.text, "Traefik Mesh Block") || strings.Contains(cf.text, "Maesh Block") {
					hint = " (it looks like Traefik Mesh's block: run its restore, or remove the block)"
				}
				return fmt.Errorf("line %d: the Corefile already has a server block for %q%s; nodemesh will not add a second one", blk.keys[0].line, a.zone, hint)
			}
		}
	}
	return nil
}

// FindListener reads from a Corefile where CoreDNS serves clusterDomain:
// the server block whose kubernetes plugin covers it.
func FindListener(corefile, clusterDomain string) (Listener, error) {
	cf, err := parseCorefile(corefile)
	if err != nil {
		return Listener{}, fmt.Errorf("%w: %v", ErrUnparseable, err)
	}
	return findListener(cf, strings.ToLower(strings.TrimSuffix(clusterDomain, ".")))
}

func findListener(cf *corefile, clusterDomain string) (Listener, error) {
	for _, blk := range cf.blocks {
		if !servesWithKubernetes(blk, clusterDomain) {
			continue
		}
		var l Listener
		for _, a := range blk.addresses() {
			if !a.plainDNS() {
				continue
			}
			if a.port != "" {
				p, err := strconv.Atoi(a.port)
				if err != nil || p < 1 || p > 65535 {
					return Listener{}, fmt.Errorf("line %d: server block key port %q is not a port number", blk.keys[0].line, a.port)
				}
				l.Port = p
			}
			host, bind, err := bindOf(cf.text, blk)
			if err != nil {
				return Listener{}, err
			}
			l.Host, l.Bind = host, bind
			return l, nil
		}
	}
	return Listener{}, fmt.Errorf("no server block of the Corefile serves %q over plain DNS with the kubernetes plugin; the mesh blocks forward to that block", clusterDomain)
}

// servesWithKubernetes reports whether blk runs the kubernetes plugin for
// zone, named in its arguments or, when it names none, in the block's keys.
func servesWithKubernetes(blk serverBlock, zone string) bool {
	for _, d := range blk.directives {
		if d.name.text != "kubernetes" {
			continue
		}
		var zones []string
		for _, a := range d.args {
			if a.text == "{" || a.lineFirst {
				break
			}
			zones = append(zones, strings.ToLower(strings.TrimSuffix(a.text, ".")))
		}
		if len(zones) == 0 {
			for _, a := range blk.addresses() {
				zones = append(zones, a.zone)
			}
		}
		for _, z := range zones {
			if z == zone || z == "." || strings.HasSuffix(zone, "."+z) {
				return true
			}
		}
	}
	return false
}

// bindOf returns the address to forward to and the block's bind directive.
func bindOf(text string, blk serverBlock) (host, bind string, err error) {
	for _, d := range blk.directives {
		if d.name.text != "bind" {
			continue
		}
		for _, a := range d.args {
			if a.text == "{" {
				break
			}
			ip, perr := netip.ParseAddr(a.text)
			if perr != nil {
				continue // an interface name (CoreDNS 1.9+)
			}
			switch {
			case ip.IsUnspecified() && ip.Is4():
				host = "127.0.0.1"
			case ip.IsUnspecified():
				host = "::1"
			default:
				host = ip.String()
			}
			return host, text[d.start:d.end], nil
		}
		return "", "", fmt.Errorf("line %d: bind names no IP address, so nodemesh cannot tell where to forward; bind an address", d.name.line)
	}
	return "127.0.0.1", "", nil
}

// renderRegion writes the marker lines and one server block per domain.
func renderRegion(o Options, l Listener) string {
	var b strings.Builder
	b.WriteString(beginLine + "\n")
	port := o.DefaultPort
	if l.Port != 0 {
		port = l.Port
	}
	target := net.JoinHostPort(l.Host, strconv.Itoa(port))
	shadowSuffix := "." + o.MeshNamespace + ".svc." + o.ClusterDomain + "."
	for _, d := range o.domains() {
		key := d
		if l.Port != 0 {
			key += ":" + strconv.Itoa(l.Port)
		}
		fmt.Fprintf(&b, "%s {\n", key)
		if l.Bind != "" {
			fmt.Fprintf(&b, "    %s\n", l.Bind)
		}
		b.WriteString("    errors\n")
		// Exact rules come first: with "stop", the first rule that matches
		// wins, and the generic rule below matches these names too.
		for _, r := range o.ExactRules {
			fmt.Fprintf(&b, "    rewrite stop name exact %s.%s.%s. %s%s\n", r.Service.Name, r.Service.Namespace, d, r.Shadow, shadowSuffix)
		}
		// "answer name" is the answer rewrite every CoreDNS since 1.7 reads
		// ("answer auto" came later). The block form is parsed as one rule
		// by every version.
		fmt.Fprintf(&b, "    rewrite stop {\n")
		fmt.Fprintf(&b, "        name regex ^([^.]+)\\.([^.]+)\\.%s\\.$ {1}--{2}%s\n", regexp.QuoteMeta(d), shadowSuffix)
		fmt.Fprintf(&b, "        answer name ^([^.]+)--([^.]+)%s$ {1}.{2}.%s.\n", regexp.QuoteMeta(shadowSuffix), d)
		fmt.Fprintf(&b, "    }\n")
		// Every other name of the zone becomes a name the cluster surely
		// lacks (a Service name cannot start with a digit), so it gets
		// NXDOMAIN. Forwarded as it was, it would come back to this block.
		// The no-op answer rule makes CoreDNS 1.7 restore the question.
		fmt.Fprintf(&b, "    rewrite stop {\n")
		fmt.Fprintf(&b, "        name regex ^.*$ 0%s\n", shadowSuffix)
		fmt.Fprintf(&b, "        answer name ^(.*)\\.$ {1}.\n")
		fmt.Fprintf(&b, "    }\n")
		// Only the cluster domain is forwarded, so no edit can make a loop.
		fmt.Fprintf(&b, "    forward %s %s\n", o.ClusterDomain, target)
		b.WriteString("}\n")
	}
	b.WriteString(EndMarker)
	return b.String()
}
