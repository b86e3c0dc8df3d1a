package accesslog

import (
	"strconv"
	"time"
	"unicode/utf8"
)

// Entry is one access log line. Zero fields are left out of the JSON,
// except code and duration.
type Entry struct {
	// Time is when the request or connection started.
	Time time.Time
	// Protocol is "http", "tcp" or "udp".
	Protocol string
	// SourceIP is the client's address; SourceNamespace, SourceWorkload
	// and SourceServiceAccount its identity ("unknown" when none).
	SourceIP             string
	SourceNamespace      string
	SourceWorkload       string
	SourceServiceAccount string
	// Namespace and Service are the destination; Backend the service a
	// split chose ("none" when no backend was reached), Endpoint the
	// backend address.
	Namespace string
	Service   string
	Backend   string
	Endpoint  string
	// Method, Host and Path are the HTTP request's (path without query).
	Method string
	Host   string
	Path   string
	// Code is the HTTP status answered; for TCP and UDP it is 0.
	Code int
	// Result is the TCP connection's outcome (ok, denied, no_endpoints,
	// connect_error).
	Result string
	// Duration is from start to the last byte (HTTP), or to close.
	Duration time.Duration
	// BytesReceived is from the client, BytesSent to it (HTTP bodies, TCP
	// streams).
	BytesReceived int64
	BytesSent     int64
	// DatagramsReceived is from the client, DatagramsSent to it (UDP).
	DatagramsReceived int64
	DatagramsSent     int64
	// Retries is the count of extra attempts made for an HTTP request.
	Retries int
	// TraceID is the W3C trace id of the request, when it carried one.
	TraceID string
}

// AppendJSON appends e as one JSON object. It is hand-written rather than
// encoding/json so that a log line costs no reflection and a single buffer.
func (e *Entry) AppendJSON(b []byte) []byte {
	b = append(b, `{"time":"`...)
	b = e.Time.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, '"')
	b = field(b, "protocol", e.Protocol)
	b = append(b, `,"source":{`...)
	b = append(b, `"ip":`...)
	b = appendString(b, e.SourceIP)
	b = field(b, "namespace", e.SourceNamespace)
	b = field(b, "workload", e.SourceWorkload)
	b = field(b, "serviceAccount", e.SourceServiceAccount)
	b = append(b, `},"destination":{`...)
	b = append(b, `"namespace":`...)
	b = appendString(b, e.Namespace)
	b = field(b, "service", e.Service)
	b = field(b, "backend", e.Backend)
	b = field(b, "endpoint", e.Endpoint)
	b = append(b, '}')
	b = field(b, "method", e.Method)
	b = field(b, "host", e.Host)
	b = field(b, "path", e.Path)
	if e.Protocol == "http" || e.Code != 0 {
		b = append(b, `,"code":`...)
		b = strconv.AppendInt(b, int64(e.Code), 10)
	}
	b = field(b, "result", e.Result)
	b = append(b, `,"durationSeconds":`...)
	b = strconv.AppendFloat(b, e.Duration.Seconds(), 'f', -1, 64)
	if e.Protocol == "udp" {
		b = append(b, `,"datagramsReceived":`...)
		b = strconv.AppendInt(b, e.DatagramsReceived, 10)
		b = append(b, `,"datagramsSent":`...)
		b = strconv.AppendInt(b, e.DatagramsSent, 10)
	} else {
		b = append(b, `,"bytesReceived":`...)
		b = strconv.AppendInt(b, e.BytesReceived, 10)
		b = append(b, `,"bytesSent":`...)
		b = strconv.AppendInt(b, e.BytesSent, 10)
	}
	if e.Retries > 0 {
		b = append(b, `,"retries":`...)
		b = strconv.AppendInt(b, int64(e.Retries), 10)
	}
	b = field(b, "traceId", e.TraceID)
	return append(b, '}')
}

// field appends ,"name":"value" when value is set.
func field(b []byte, name, value string) []byte {
	if value == "" {
		return b
	}
	b = append(b, ',', '"')
	b = append(b, name...)
	b = append(b, '"', ':')
	return appendString(b, value)
}

// appendString appends s as a JSON string. Invalid UTF-8 becomes U+FFFD,
// control characters are escaped, so a hostile path cannot break a line.
func appendString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c < 0x20 || c == 0x7f:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, `\ufffd`...)
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}
