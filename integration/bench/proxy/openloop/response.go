package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"strconv"
)

// readResponse reads one HTTP/1.1 response from r and discards it. It
// reports whether the server keeps the connection open ("Connection: close"
// says it does not: nginx sends it after keepalive_requests). It fails on a
// status other than 200, so a misrouted benchmark cannot pass as fast.
func readResponse(r *bufio.Reader) (keepAlive bool, err error) {
	line, err := r.ReadSlice('\n')
	if err != nil {
		return false, err
	}
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) {
		return false, fmt.Errorf("bad status line %q", line)
	}
	if !bytes.Equal(line[9:12], []byte("200")) {
		return false, fmt.Errorf("status %q", bytes.TrimSpace(line))
	}
	length, chunked := -1, false
	keepAlive = true
	for {
		line, err = r.ReadSlice('\n')
		if err != nil {
			return false, err
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			break
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			if length, err = strconv.Atoi(string(value)); err != nil {
				return false, fmt.Errorf("bad Content-Length %q", value)
			}
		case bytes.EqualFold(name, []byte("Connection")):
			keepAlive = !bytes.EqualFold(value, []byte("close"))
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			chunked = bytes.EqualFold(value, []byte("chunked"))
		}
	}
	switch {
	case chunked:
		return keepAlive, discardChunked(r)
	case length >= 0:
		_, err = r.Discard(length)
		return keepAlive, err
	default:
		return false, errors.New("response without length: keep-alive impossible")
	}
}

// discardChunked reads a chunked body and its trailer.
func discardChunked(r *bufio.Reader) error {
	for {
		line, err := r.ReadSlice('\n')
		if err != nil {
			return err
		}
		size, _, _ := bytes.Cut(bytes.TrimRight(line, "\r\n"), []byte(";"))
		n, err := strconv.ParseInt(string(size), 16, 64)
		if err != nil {
			return fmt.Errorf("bad chunk size %q", size)
		}
		if n == 0 {
			for { // trailer, up to the empty line
				line, err = r.ReadSlice('\n')
				if err != nil {
					return err
				}
				if len(bytes.TrimRight(line, "\r\n")) == 0 {
					return nil
				}
			}
		}
		if _, err := r.Discard(int(n) + 2); err != nil {
			return err
		}
	}
}
