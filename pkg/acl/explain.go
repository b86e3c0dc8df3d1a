package acl

import (
	"net/http"
	"net/netip"
	"strconv"
	"strings"

	"github.com/nodemesh/nodemesh/pkg/httpmatch"
	"github.com/nodemesh/nodemesh/pkg/table"
)

// maxShownPath bounds the request path quoted in a denial message.
const maxShownPath = 128

// HTTPDenial is the short text that explains why request r from src (whose
// identity is id, nil when it has none) was refused on route: the 403 body
// the client gets. For example:
//
//	no TrafficTarget allows shop/client to reach shop/web route GET /admin
func HTTPDenial(reason Reason, src netip.Addr, id *table.Identity, route *table.HTTPRoute, r *http.Request) string {
	var b strings.Builder
	writeWho(&b, reason, src, id)
	b.WriteString(" to reach ")
	b.WriteString(route.Service.String())
	if reason == NoMatchingRule {
		b.WriteString(" route ")
		b.WriteString(shown(r.Method))
		b.WriteByte(' ')
		b.WriteString(shown(httpmatch.Path(r)))
	}
	return b.String()
}

// StreamDenial is the text that explains why a connection (proto "tcp") or
// datagram (proto "udp") from src was refused on route, for logs. For
// example:
//
//	no TrafficTarget allows shop/client to reach shop/db port 5432/tcp
func StreamDenial(reason Reason, proto string, src netip.Addr, id *table.Identity, route *table.StreamRoute) string {
	var b strings.Builder
	writeWho(&b, reason, src, id)
	b.WriteString(" to reach ")
	b.WriteString(route.Service.String())
	b.WriteString(" port ")
	b.WriteString(strconv.Itoa(int(route.Port)))
	b.WriteByte('/')
	b.WriteString(proto)
	return b.String()
}

func writeWho(b *strings.Builder, reason Reason, src netip.Addr, id *table.Identity) {
	b.WriteString("no TrafficTarget allows ")
	if reason == NoIdentity || id == nil {
		b.WriteString(src.String())
		b.WriteString(" (not a pod of the mesh)")
		return
	}
	b.WriteString(id.Namespace)
	b.WriteByte('/')
	b.WriteString(id.ServiceAccount)
}

// shown returns s as it may appear in a message: unchanged when it is short
// printable ASCII without spaces, else truncated and quoted, so a client
// cannot shape the proxy's answer with control characters.
func shown(s string) string {
	plain := len(s) <= maxShownPath && s != ""
	for i := 0; plain && i < len(s); i++ {
		plain = s[i] > ' ' && s[i] < 0x7f && s[i] != '"'
	}
	if plain {
		return s
	}
	if len(s) > maxShownPath {
		return strconv.QuoteToASCII(s[:maxShownPath]) + "..."
	}
	return strconv.QuoteToASCII(s)
}
