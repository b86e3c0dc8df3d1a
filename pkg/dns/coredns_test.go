package dns

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
	"k8s.io/apimachinery/pkg/types"
)

// TestRegionOnRealCoreDNS runs the patched region on real CoreDNS binaries:
// $NODEMESH_TOOLS_DIR/coredns (1.13.1, built by integration/tools) and any
// listed, colon-separated, in $NODEMESH_COREDNS_BINS (e.g. a 1.7.0 build),
// which is how "CoreDNS 1.7 and later" is checked. The cluster domain is a
// zone file here, so the test needs no apiserver; CoreDNS listens on
// 127.0.0.1 only.
func TestRegionOnRealCoreDNS(t *testing.T) {
	var bins []string
	if dir := os.Getenv("NODEMESH_TOOLS_DIR"); dir != "" {
		bins = append(bins, filepath.Join(dir, "coredns"))
	}
	for _, b := range strings.Split(os.Getenv("NODEMESH_COREDNS_BINS"), ":") {
		if b != "" {
			bins = append(bins, b)
		}
	}
	if len(bins) == 0 {
		t.Skip("no CoreDNS binary: set NODEMESH_TOOLS_DIR (make test does) or NODEMESH_COREDNS_BINS")
	}
	for _, bin := range bins {
		t.Run(filepath.Base(bin), func(t *testing.T) { runRegionOn(t, bin) })
	}
}

func runRegionOn(t *testing.T, bin string) {
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("CoreDNS binary: %v", err)
	}
	dir := t.TempDir()
	zone := `$ORIGIN cluster.local.
@ 30 IN SOA ns.cluster.local. admin.cluster.local. 1 7200 3600 1209600 30
web--test.nodemesh.svc 30 IN A 10.96.0.42
a--b--c.nodemesh.svc 30 IN A 10.96.0.44
api-0123456789.nodemesh.svc 30 IN A 10.96.0.43
`
	if err := os.WriteFile(filepath.Join(dir, "cluster.local.zone"), []byte(zone), 0o644); err != nil {
		t.Fatal(err)
	}
	port := freeUDPPort(t)
	main := fmt.Sprintf(".:%d {\n    bind 127.0.0.1\n    errors\n    file %s cluster.local\n}\n", port, filepath.Join(dir, "cluster.local.zone"))
	corefile, err := Patch(main, Options{
		Aliases:    []string{"traefik.mesh"},
		ExactRules: []ExactRule{{Service: types.NamespacedName{Namespace: "team--a", Name: "api"}, Shadow: "api-0123456789"}},
		Listener:   &Listener{Port: port, Host: "127.0.0.1", Bind: "bind 127.0.0.1"},
	})
	if err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "Corefile")
	if err := os.WriteFile(conf, []byte(corefile), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-conf", conf)
	logFile, err := os.Create(filepath.Join(dir, "coredns.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	cmd.Stdout, cmd.Stderr = logFile, logFile
	output := func() string { b, _ := os.ReadFile(logFile.Name()); return string(b) }
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-exited })
	server := fmt.Sprintf("127.0.0.1:%d", port)

	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, _, _, err := queryA(server, "web--test.nodemesh.svc.cluster.local."); err == nil {
			break
		}
		select {
		case <-exited:
			t.Fatalf("CoreDNS exited; its output:\n%s", output())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("CoreDNS did not answer within 10s; its output:\n%s", output())
		}
		time.Sleep(50 * time.Millisecond)
	}
	tests := []struct {
		name  string
		rcode dnsmessage.RCode
		ip    string
	}{
		{"web.test.mesh.", dnsmessage.RCodeSuccess, "10.96.0.42"},
		{"web.test.traefik.mesh.", dnsmessage.RCodeSuccess, "10.96.0.42"},
		{"a--b.c.mesh.", dnsmessage.RCodeSuccess, "10.96.0.44"},
		{"api.team--a.mesh.", dnsmessage.RCodeSuccess, "10.96.0.43"},
		{"api.team--a.traefik.mesh.", dnsmessage.RCodeSuccess, "10.96.0.43"},
		{"nope.test.mesh.", dnsmessage.RCodeNameError, ""},
		{"x.web.test.mesh.", dnsmessage.RCodeNameError, ""},
		{"mesh.", dnsmessage.RCodeNameError, ""},
	}
	for _, tt := range tests {
		rcode, names, ips, err := queryA(server, tt.name)
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		if rcode != tt.rcode {
			t.Errorf("%s: rcode %v, want %v (answers %v %v)", tt.name, rcode, tt.rcode, names, ips)
			continue
		}
		if tt.ip != "" && (len(ips) != 1 || ips[0] != tt.ip || names[0] != tt.name) {
			t.Errorf("%s: answered %v %v, want %s under the name asked", tt.name, names, ips, tt.ip)
		}
	}
	if t.Failed() {
		t.Logf("Corefile:\n%s\nCoreDNS output:\n%s", corefile, output())
	}
}

func freeUDPPort(t *testing.T) int {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	return pc.LocalAddr().(*net.UDPAddr).Port
}

// queryA sends one A query over UDP, waiting at most 2s, and checks that
// the reply carries the question asked.
func queryA(server, name string) (dnsmessage.RCode, []string, []string, error) {
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: 42, RecursionDesired: true})
	_ = b.StartQuestions()
	_ = b.Question(dnsmessage.Question{Name: dnsmessage.MustNewName(name), Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET})
	msg, err := b.Finish()
	if err != nil {
		return 0, nil, nil, err
	}
	conn, err := net.Dial("udp", server)
	if err != nil {
		return 0, nil, nil, err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := conn.Write(msg); err != nil {
		return 0, nil, nil, err
	}
	buf := make([]byte, 4096)
	n, err := conn.Read(buf)
	if err != nil {
		return 0, nil, nil, err
	}
	var m dnsmessage.Message
	if err := m.Unpack(buf[:n]); err != nil {
		return 0, nil, nil, err
	}
	if len(m.Questions) != 1 || m.Questions[0].Name.String() != name {
		return 0, nil, nil, fmt.Errorf("reply carries the question %v", m.Questions)
	}
	var names, ips []string
	for _, rr := range m.Answers {
		if a, ok := rr.Body.(*dnsmessage.AResource); ok {
			names = append(names, rr.Header.Name.String())
			ips = append(ips, net.IP(a.A[:]).String())
		}
	}
	return m.Header.RCode, names, ips, nil
}
