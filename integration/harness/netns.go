package harness

import (
	"fmt"
	"net/netip"
	"os/exec"
	"strings"
	"sync"
)

// The harness configures links with iproute2's `ip` rather than netlink
// calls: it is on every Linux machine we target and keeps this package free of
// a netlink dependency for three commands.

// setUpNamespace brings lo up in the fresh namespace; until then even
// 127.0.0.1 is unreachable.
func setUpNamespace() error {
	return ipCommand("link", "set", "lo", "up")
}

// ipCommand runs `ip args...` and folds its output into the error.
func ipCommand(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// addresses records which owner holds each address the harness put on an
// interface, for the whole process: clusters started by one test binary share
// its namespace and route between the node namespaces, so an address can be
// held by one pod, node, bridge or apiserver at a time.
var addresses = struct {
	sync.Mutex
	owner map[netip.Addr]addrHolding
}{owner: map[netip.Addr]addrHolding{}}

// addrHolding is who holds an address and where it was put.
type addrHolding struct {
	owner string
	ns    *netNS // nil: the harness namespace
	dev   string
	bits  int // prefix length it was added with
}

// AddrInUseError is the error for an address claimed while another pod, node
// or apiserver of this test binary still holds it.
type AddrInUseError struct {
	Addr     netip.Addr
	Holder   string // who has it, e.g. "pod default/a"
	Claimant string // who asked for it
}

// Error says which address is taken, by whom, and who asked for it.
func (e *AddrInUseError) Error() string {
	return fmt.Sprintf("address %s is already in use by %s; it cannot also be used by %s", e.Addr, e.Holder, e.Claimant)
}

// claimAddr records owner as the holder of ip and puts ip/32 on lo of the
// harness namespace. It fails, naming the current holder, when ip is taken.
func claimAddr(ip netip.Addr, owner string) error {
	return claimAddrOn(nil, "lo", 32, ip, owner)
}

// claimAddrOn is claimAddr for ip/bits on dev in ns (nil: the harness
// namespace).
func claimAddrOn(ns *netNS, dev string, bits int, ip netip.Addr, owner string) error {
	if !ip.Is4() || ip.IsLoopback() || ip.IsUnspecified() || ip.IsMulticast() {
		// EndpointSlice validation rejects loopback; the rest cannot be a pod IP.
		return fmt.Errorf("address %s cannot be used by %s: want a unicast, non-loopback IPv4 address", ip, owner)
	}
	addresses.Lock()
	defer addresses.Unlock()
	if holder, ok := addresses.owner[ip]; ok {
		return &AddrInUseError{Addr: ip, Holder: holder.owner, Claimant: owner}
	}
	if err := ns.ip("addr", "add", fmt.Sprintf("%s/%d", ip, bits), "dev", dev); err != nil {
		return err
	}
	addresses.owner[ip] = addrHolding{owner: owner, ns: ns, dev: dev, bits: bits}
	return nil
}

// claimFree claims the first free address from the given candidates, on lo
// of ns (nil: the harness namespace).
func claimFree(ns *netNS, owner string, candidates func(yield func(netip.Addr) bool)) (netip.Addr, error) {
	for ip := range candidates {
		addresses.Lock()
		_, taken := addresses.owner[ip]
		addresses.Unlock()
		if taken {
			continue
		}
		// Another goroutine may win the race for ip; then try the next one.
		err := claimAddrOn(ns, "lo", 32, ip, owner)
		if err == nil {
			return ip, nil
		}
		if _, inUse := err.(*AddrInUseError); !inUse {
			return netip.Addr{}, err
		}
	}
	return netip.Addr{}, fmt.Errorf("no free address left for %s", owner)
}

// releaseAddr takes ip off its interface and frees it for reuse. An address
// in a node namespace that is already gone went with it.
func releaseAddr(ip netip.Addr) error {
	addresses.Lock()
	defer addresses.Unlock()
	h, ok := addresses.owner[ip]
	if !ok {
		return nil
	}
	delete(addresses.owner, ip)
	if h.ns.closed() {
		return nil
	}
	return h.ns.ip("addr", "del", fmt.Sprintf("%s/%d", ip, h.bits), "dev", h.dev)
}

// hostsIn yields the addresses .from to .254 of a /24 prefix.
func hostsIn(p netip.Prefix, from int) func(yield func(netip.Addr) bool) {
	return func(yield func(netip.Addr) bool) {
		b := p.Masked().Addr().As4()
		for i := from; i <= 254; i++ {
			b[3] = byte(i)
			if !yield(netip.AddrFrom4(b)) {
				return
			}
		}
	}
}
