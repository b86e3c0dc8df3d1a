package integration_test

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// dnsAnswer is what a DNS server said to one A query.
type dnsAnswer struct {
	rcode dnsmessage.RCode
	// names and ips are the A records of the answer section, in order.
	names []string
	ips   []netip.Addr
}

func (a dnsAnswer) String() string {
	var recs []string
	for i := range a.names {
		recs = append(recs, a.names[i]+" A "+a.ips[i].String())
	}
	return fmt.Sprintf("%v %v", a.rcode, recs)
}

// dnsQueryA asks server (host:port, UDP) for the A records of name, with a
// bounded wait. It checks that the reply answers the question asked.
func dnsQueryA(server, name string) (dnsAnswer, error) {
	q := dnsmessage.Question{Name: dnsmessage.MustNewName(name), Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET}
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: uint16(time.Now().UnixNano()), RecursionDesired: true})
	if err := b.StartQuestions(); err != nil {
		return dnsAnswer{}, err
	}
	if err := b.Question(q); err != nil {
		return dnsAnswer{}, err
	}
	msg, err := b.Finish()
	if err != nil {
		return dnsAnswer{}, err
	}
	conn, err := net.Dial("udp", server)
	if err != nil {
		return dnsAnswer{}, err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := conn.Write(msg); err != nil {
		return dnsAnswer{}, err
	}
	buf := make([]byte, 4096)
	n, err := conn.Read(buf)
	if err != nil {
		return dnsAnswer{}, err
	}
	var m dnsmessage.Message
	if err := m.Unpack(buf[:n]); err != nil {
		return dnsAnswer{}, err
	}
	if len(m.Questions) != 1 || m.Questions[0].Name.String() != name {
		return dnsAnswer{}, fmt.Errorf("reply to %s carries the question %v", name, m.Questions)
	}
	out := dnsAnswer{rcode: m.Header.RCode}
	for _, rr := range m.Answers {
		if a, ok := rr.Body.(*dnsmessage.AResource); ok {
			out.names = append(out.names, rr.Header.Name.String())
			out.ips = append(out.ips, netip.AddrFrom4(a.A))
		}
	}
	return out, nil
}

// fakeUpstream stands for the resolver CoreDNS forwards other names to
// (/etc/resolv.conf in a cluster): it answers NXDOMAIN to everything, as
// the Internet does for the mesh domains, and counts the queries.
type fakeUpstream struct {
	addr    string
	queries atomic.Int64
}

func startFakeUpstream(t *testing.T) *fakeUpstream {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := &fakeUpstream{addr: pc.LocalAddr().String()}
	t.Cleanup(func() { _ = pc.Close() })
	go func() {
		buf := make([]byte, 4096)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return // closed
			}
			u.queries.Add(1)
			var p dnsmessage.Parser
			h, err := p.Start(buf[:n])
			if err != nil {
				continue
			}
			qs, err := p.AllQuestions()
			if err != nil {
				continue
			}
			b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: h.ID, Response: true, RecursionAvailable: true, RCode: dnsmessage.RCodeNameError})
			_ = b.StartQuestions()
			for _, q := range qs {
				_ = b.Question(q)
			}
			if reply, err := b.Finish(); err == nil {
				_, _ = pc.WriteTo(reply, from)
			}
		}
	}()
	return u
}

// freeLoopbackPort returns a port free for both TCP and UDP on 127.0.0.1.
func freeLoopbackPort(t *testing.T) int {
	t.Helper()
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		pc, err := net.ListenPacket("udp", "127.0.0.1:"+strconv.Itoa(port))
		_ = l.Close()
		if err == nil {
			_ = pc.Close()
			return port
		}
	}
	t.Fatal(errors.New("no port free for TCP and UDP on 127.0.0.1"))
	return 0
}
