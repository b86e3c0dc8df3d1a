// Package accesslogtest holds what the data planes' tests of the access log
// share.
package accesslogtest

import (
	"bytes"
	"sync"
)

// Buffer is a bytes.Buffer safe to write from the access log's writer
// goroutine while a test reads it.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *Buffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns what was written so far.
func (s *Buffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
