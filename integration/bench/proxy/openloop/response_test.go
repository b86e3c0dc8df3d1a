package main

import (
	"bufio"
	"strings"
	"testing"
)

func TestReadResponse(t *testing.T) {
	tests := []struct {
		name      string
		in        string
		keepAlive bool
		wantErr   string
		rest      string // what must remain unread: the next response
	}{
		{"content length", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloNEXT", true, "", "NEXT"},
		{"chunked with trailer", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\nT: v\r\n\r\nNEXT", true, "", "NEXT"},
		{"connection close", "HTTP/1.1 200 OK\r\nconnection: Close\r\ncontent-length: 0\r\n\r\n", false, "", ""},
		{"not 200", "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", false, `status "HTTP/1.1 404 Not Found"`, ""},
		{"no length", "HTTP/1.1 200 OK\r\n\r\nbody", false, "without length", ""},
		{"truncated body", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", false, "EOF", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := bufio.NewReader(strings.NewReader(tt.in))
			keepAlive, err := readResponse(r)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if keepAlive != tt.keepAlive {
				t.Errorf("keepAlive %v, want %v", keepAlive, tt.keepAlive)
			}
			rest, _ := r.ReadString(0)
			if rest != tt.rest {
				t.Errorf("left %q unread, want %q", rest, tt.rest)
			}
		})
	}
}

func TestRankIsNearestRank(t *testing.T) {
	s := make([]int64, 1000)
	for i := range s {
		s[i] = int64(i + 1)
	}
	for _, tt := range []struct {
		q    float64
		want int64
	}{{0.5, 500}, {0.99, 990}, {0.999, 999}, {1, 1000}} {
		if got := rank(s, tt.q); got != tt.want {
			t.Errorf("rank(%v) = %d, want %d", tt.q, got, tt.want)
		}
	}
}
