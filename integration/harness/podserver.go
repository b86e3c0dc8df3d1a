package harness

import (
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"
)

// maxDelay caps ?delay= so that a typo cannot hang a test.
const maxDelay = 5 * time.Minute

// WhoAmI is the JSON body of every answer from a ServerWhoAmI port.
type WhoAmI struct {
	// Pod, Namespace and Node say who answered.
	Pod       string `json:"pod"`
	Namespace string `json:"namespace"`
	Node      string `json:"node"`
	// IP and Port are the local address that took the request.
	IP   string `json:"ip"`
	Port int32  `json:"port"`
	// Request is the request as the server saw it.
	Request SeenRequest `json:"request"`
}

// SeenRequest is an HTTP request as a whoami server saw it.
type SeenRequest struct {
	Method     string      `json:"method"`
	Path       string      `json:"path"`
	Query      string      `json:"query"`
	Host       string      `json:"host"`
	Proto      string      `json:"proto"`
	RemoteAddr string      `json:"remoteAddr"`
	Headers    http.Header `json:"headers"`
}

// runPodProcess is the body of a pod process: it listens on every port of
// the pod's configuration, tells the harness on fd 3, and serves until it is
// killed. It returns an exit code only on failure.
func runPodProcess() int {
	ready := os.NewFile(3, "ready")
	var cfg podConfig
	if err := json.Unmarshal([]byte(os.Getenv(envPod)), &cfg); err != nil {
		fmt.Fprintf(ready, "bad pod configuration: %v\n", err)
		return 2
	}
	serve, err := listen(cfg)
	if err != nil {
		fmt.Fprintf(ready, "%v\n", err)
		return 1
	}
	fmt.Fprintln(ready, "ok")
	ready.Close()
	errc := make(chan error, len(serve))
	for _, s := range serve {
		go func() { errc <- s() }()
	}
	log.Printf("pod %s/%s: serving failed: %v", cfg.Namespace, cfg.Name, <-errc)
	return 1
}

// listen opens every port of the pod and returns the loops serving them, so
// that a port clash fails before anything serves.
func listen(cfg podConfig) ([]func() error, error) {
	var serve []func() error
	for _, port := range cfg.Ports {
		addr := netip.AddrPortFrom(cfg.IP, uint16(port.Port)).String()
		switch port.Server {
		case ServerUDPEcho:
			conn, err := net.ListenPacket("udp", addr)
			if err != nil {
				return nil, fmt.Errorf("port clash or bad address for %s: %w", port.Name, err)
			}
			serve = append(serve, func() error { return udpEcho(conn) })
		default:
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				return nil, fmt.Errorf("port clash or bad address for %s: %w", port.Name, err)
			}
			if port.Server == ServerTCPEcho {
				serve = append(serve, func() error { return tcpEcho(ln) })
			} else {
				srv := &http.Server{Handler: whoami(cfg, port.Port), ReadHeaderTimeout: 10 * time.Second}
				serve = append(serve, func() error { return srv.Serve(ln) })
			}
		}
		log.Printf("pod %s/%s: %s on %s", cfg.Namespace, cfg.Name, port.Server, addr)
	}
	return serve, nil
}

// whoami answers with a WhoAmI. /status/<code> sets the status code and
// ?delay=<duration> waits first, for tests of failing and slow pods.
func whoami(cfg podConfig, port int32) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		code := http.StatusOK
		if rest, ok := strings.CutPrefix(r.URL.Path, "/status/"); ok {
			n, err := strconv.Atoi(rest)
			if err != nil || n < 100 || n > 599 {
				http.Error(w, "want /status/<code> with a code from 100 to 599", http.StatusBadRequest)
				return
			}
			code = n
		}
		if d := r.URL.Query().Get("delay"); d != "" {
			delay, err := time.ParseDuration(d)
			if err != nil || delay < 0 || delay > maxDelay {
				http.Error(w, fmt.Sprintf("want ?delay=<duration> between 0 and %s", maxDelay), http.StatusBadRequest)
				return
			}
			select {
			case <-time.After(delay):
			case <-r.Context().Done():
				return
			}
		}
		body, _ := json.Marshal(WhoAmI{ // marshalling these types cannot fail
			Pod: cfg.Name, Namespace: cfg.Namespace, Node: cfg.Node, IP: cfg.IP.String(), Port: port,
			Request: SeenRequest{
				Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Host: r.Host,
				Proto: r.Proto, RemoteAddr: r.RemoteAddr, Headers: r.Header,
			},
		})
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_, _ = w.Write(append(body, '\n'))
	})
}

// tcpEcho writes back what each connection sends until it closes.
func tcpEcho(ln net.Listener) error {
	for {
		conn, err := ln.Accept()
		if err != nil {
			return err
		}
		go func() {
			defer conn.Close()
			_, _ = io.Copy(conn, conn)
		}()
	}
}

// udpEcho sends each datagram back to where it came from.
func udpEcho(conn net.PacketConn) error {
	buf := make([]byte, 64*1024)
	for {
		n, from, err := conn.ReadFrom(buf)
		if err != nil {
			return err
		}
		_, _ = conn.WriteTo(buf[:n], from)
	}
}
