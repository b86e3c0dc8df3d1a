package shadow

import (
	"fmt"
	"hash/fnv"
	"math"
	"math/big"
	"net/netip"
	"strconv"
)

// IPPicker chooses the ClusterIP of a shadow Service within the cluster's
// Service CIDR, so that creating shadows does not wait on kube-apiserver's
// dynamic allocation. kube-apiserver allocates a dynamic ClusterIP under one
// mutex, around the IPAddress create and its count of every allocated
// address; a Service that names its own ClusterIP takes no such lock, so
// shadows are created in parallel (docs/controller.md, Shadow services).
//
// The address is a hash of the shadow's name, so a shadow deleted and made
// again gets the same one when it is free. It lies in the upper band of the
// CIDR, the band kube-apiserver uses for dynamic allocation (KEP-3070): the
// lower band stays for the addresses users set by hand. A taken address is
// retried with the next attempt's; the caller falls back to a dynamic
// ClusterIP after a few.
//
// Nothing in client-go or apimachinery picks addresses; the band's bounds
// follow kube-apiserver's ipallocator (calculateRangeOffset and the first
// and last usable addresses).
type IPPicker struct {
	prefix netip.Prefix
	first  netip.Addr // the band's first address
	count  uint64     // the band's addresses, at most 2^63
}

// NewIPPicker returns the picker of cidr (a Service CIDR such as
// "10.96.0.0/12" or "fd00:10:96::/108").
func NewIPPicker(cidr string) (*IPPicker, error) {
	p, err := netip.ParsePrefix(cidr)
	if err != nil {
		return nil, fmt.Errorf("service CIDR %q: %w", cidr, err)
	}
	p = p.Masked()
	hostBits := p.Addr().BitLen() - p.Bits()
	if p.Addr().Is4() && hostBits < 2 || hostBits < 1 {
		return nil, fmt.Errorf("service CIDR %s: too small", p)
	}
	// Usable: from the network address + 1 to the broadcast address - 1
	// (IPv4) or the last address (IPv6).
	size := uint64(math.MaxUint64) // 2^hostBits, saturated
	if hostBits < 64 {
		size = 1 << hostBits
	}
	usable := size - 1
	if p.Addr().Is4() {
		usable--
	}
	// The lower band, reserved for static addresses: min(max(16, size/16),
	// 256) addresses, none for a CIDR of 16 addresses or fewer.
	var offset uint64
	if size > 16 {
		offset = min(max(16, size/16), 256)
	}
	if usable <= offset {
		return nil, fmt.Errorf("service CIDR %s: no dynamic band", p)
	}
	first, err := addToAddr(p.Addr().Next(), offset)
	if err != nil {
		return nil, err
	}
	return &IPPicker{prefix: p, first: first, count: min(usable-offset, 1<<63)}, nil
}

// Prefix returns the picker's Service CIDR.
func (p *IPPicker) Prefix() netip.Prefix { return p.prefix }

// Pick returns the address of attempt (0, 1, ...) for the shadow name.
func (p *IPPicker) Pick(name string, attempt int) netip.Addr {
	h := fnv.New64a()
	_, _ = h.Write([]byte(name))
	if attempt > 0 {
		_, _ = h.Write([]byte("#" + strconv.Itoa(attempt)))
	}
	a, _ := addToAddr(p.first, h.Sum64()%p.count) // within the band by construction
	return a
}

// addToAddr returns a + n, or an error if that leaves a's family.
func addToAddr(a netip.Addr, n uint64) (netip.Addr, error) {
	sum := new(big.Int).Add(new(big.Int).SetBytes(a.AsSlice()), new(big.Int).SetUint64(n))
	b := sum.Bytes()
	size := a.BitLen() / 8
	if len(b) > size {
		return netip.Addr{}, fmt.Errorf("%s + %d overflows", a, n)
	}
	buf := make([]byte, size)
	copy(buf[size-len(b):], b)
	out, _ := netip.AddrFromSlice(buf)
	return out, nil
}
