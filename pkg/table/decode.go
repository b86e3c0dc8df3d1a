package table

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// MaxEncodedSize bounds the size of an encoded table Decode accepts. A table
// with 1,000 services and 10,000 endpoints encodes to about 1.5 MiB; 64 MiB
// leaves room while still refusing a runaway input.
const MaxEncodedSize = 64 << 20

// Decode parses the JSON encoding of a table. It is strict: an unknown field,
// a second JSON value or trailing garbage is an error, because a field this
// proxy does not know may carry a rule (an ACL, say) it would silently ignore.
// Decode checks syntax only; call Validate for the semantic checks.
func Decode(b []byte) (*Table, error) {
	if len(b) > MaxEncodedSize {
		return nil, fmt.Errorf("decode table: %d bytes exceeds the limit of %d", len(b), MaxEncodedSize)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var t Table
	if err := dec.Decode(&t); err != nil {
		return nil, fmt.Errorf("decode table: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("decode table: unexpected data after the table")
	}
	return &t, nil
}
