// Package dns makes "name.namespace.<domain>" resolve to the shadow service
// in every cluster with CoreDNS or kube-dns, and takes it back on uninstall.
//
// The core is pure and works on texts: Patch adds one CoreDNS server block
// per mesh domain between two marker comments, and Restore removes exactly
// those lines, so that Restore(Patch(x)) == x. Patcher applies them to the
// cluster through client-go (the Corefile ConfigMap, AKS's coredns-custom,
// or kube-dns's stubDomains), writing only on a real change and restarting
// CoreDNS only when it has no reload plugin. Watcher keeps the patch in
// place against drift. See docs/dns.md.
package dns
