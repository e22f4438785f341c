package job

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
)

// Field names of the envelope and of its request, exactly as written.
var (
	envelopeKeys = []string{"v", "id", "provider", "task", "request", "batch", "max_attempts", "not_before", "expires_at", "meta"}
	requestKeys  = []string{"method", "path", "query", "headers", "body", "body_base64"}
)

// CheckKeys refuses an envelope whose own keys or request keys repeat or
// differ in case from the schema's. JSON decoders match names without
// regard to case (and fold "ſ" to "s", "K" to "k") and keep the last of a
// repeated key, and not all decoders agree on this: {"path":"/x",
// "Path":"//evil"} could read one way to a gateway or a dashboard and
// another to the worker. One reading, the schema's, is the only safe one.
// Call it on data that decoded as a job: it walks JSON without checking
// it (on anything else it returns an error or nil, and never panics). Its
// error is a *FieldError for "envelope".
func CheckKeys(data []byte) error {
	s := scanner{data: data}
	return s.object("", envelopeKeys)
}

type scanner struct {
	data []byte
	i    int
}

var errScan = &FieldError{Field: "envelope", Reason: "cannot be scanned for its keys"}

func (s *scanner) skipSpace() {
	for s.i < len(s.data) {
		switch s.data[s.i] {
		case ' ', '\t', '\r', '\n':
			s.i++
		default:
			return
		}
	}
}

// object reads an object whose keys must be in known, descending into
// "request" at the top level.
func (s *scanner) object(path string, known []string) error {
	s.skipSpace()
	if s.i >= len(s.data) || s.data[s.i] != '{' {
		return errScan
	}
	s.i++
	var seen uint32 // bit i: known[i] was read
	for {
		s.skipSpace()
		if s.i < len(s.data) && s.data[s.i] == '}' {
			s.i++
			return nil
		}
		raw, err := s.str()
		if err != nil {
			return err
		}
		name := raw[1 : len(raw)-1]
		if bytes.IndexByte(name, '\\') >= 0 {
			var key string
			if err := json.Unmarshal(raw, &key); err != nil {
				return errScan
			}
			name = []byte(key)
		}
		i := slices.IndexFunc(known, func(k string) bool { return k == string(name) })
		switch {
		case i < 0:
			return &FieldError{Field: "envelope", Reason: fmt.Sprintf("key %q is not a field of the v1 envelope (names are case-sensitive)", path+string(name))}
		case seen&(1<<i) != 0:
			return &FieldError{Field: "envelope", Reason: fmt.Sprintf("key %q appears more than once", path+string(name))}
		}
		seen |= 1 << i
		key := known[i]
		s.skipSpace()
		if s.i >= len(s.data) || s.data[s.i] != ':' {
			return errScan
		}
		s.i++
		s.skipSpace()
		if path == "" && key == "request" && s.i < len(s.data) && s.data[s.i] == '{' {
			err = s.object("request.", requestKeys)
		} else {
			err = s.value()
		}
		if err != nil {
			return err
		}
		s.skipSpace()
		if s.i < len(s.data) && s.data[s.i] == ',' {
			s.i++
		}
	}
}

// str returns the string at s.i with its quotes.
func (s *scanner) str() ([]byte, error) {
	if s.i >= len(s.data) || s.data[s.i] != '"' {
		return nil, errScan
	}
	start := s.i
	for s.i++; s.i < len(s.data); s.i++ {
		switch s.data[s.i] {
		case '\\':
			s.i++
		case '"':
			s.i++
			return s.data[start:s.i], nil
		}
	}
	return nil, errScan
}

// value skips one JSON value.
func (s *scanner) value() error {
	depth := 0
	for s.i < len(s.data) {
		switch c := s.data[s.i]; c {
		case '"':
			if _, err := s.str(); err != nil {
				return err
			}
			if depth == 0 {
				return nil
			}
			continue
		case '{', '[':
			depth++
		case '}', ']':
			if depth == 0 {
				return nil // the end of the enclosing object
			}
			depth--
			if depth == 0 {
				s.i++
				return nil
			}
		case ',':
			if depth == 0 {
				return nil
			}
		}
		s.i++
	}
	return nil
}
