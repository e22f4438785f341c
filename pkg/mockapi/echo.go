package mockapi

import (
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"
)

// echo is the body of every answer: enough for a test to see what arrived.
type echo struct {
	// N is the request's number, counting from 1 (since New or Reset).
	N      int64  `json:"n"`
	Status int    `json:"status"`
	Method string `json:"method"`
	// Path and Query are as sent, still percent-encoded.
	Path           string `json:"path"`
	Query          string `json:"query,omitempty"`
	IdempotencyKey string `json:"idempotency_key,omitempty"`
	// Calls is how many admitted requests carried this idempotency key,
	// this one included; 0 for a request the rate limit refused.
	Calls     int    `json:"calls,omitempty"`
	BodyBytes int64  `json:"body_bytes"`
	Error     string `json:"error,omitempty"`
}

// appendJSON appends e as encoding/json would write it (bar its escaping of
// <, > and &, which only matters inside HTML). It is written by hand because
// reflection and an Encoder per answer were most of the mock's own cost.
func (e *echo) appendJSON(b []byte) []byte {
	b = append(b, `{"n":`...)
	b = strconv.AppendInt(b, e.N, 10)
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(e.Status), 10)
	b = append(b, `,"method":`...)
	b = appendString(b, e.Method)
	b = append(b, `,"path":`...)
	b = appendString(b, e.Path)
	if e.Query != "" {
		b = append(b, `,"query":`...)
		b = appendString(b, e.Query)
	}
	if e.IdempotencyKey != "" {
		b = append(b, `,"idempotency_key":`...)
		b = appendString(b, e.IdempotencyKey)
	}
	if e.Calls != 0 {
		b = append(b, `,"calls":`...)
		b = strconv.AppendInt(b, int64(e.Calls), 10)
	}
	b = append(b, `,"body_bytes":`...)
	b = strconv.AppendInt(b, e.BodyBytes, 10)
	if e.Error != "" {
		b = append(b, `,"error":`...)
		b = appendString(b, e.Error)
	}
	return append(b, "}\n"...)
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string. Invalid UTF-8 becomes U+FFFD,
// as with encoding/json.
func appendString(b []byte, s string) []byte {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\ufffd")
	}
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		b = append(b, s[start:i]...)
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\n':
			b = append(b, `\n`...)
		case '\r':
			b = append(b, `\r`...)
		case '\t':
			b = append(b, `\t`...)
		case '\b':
			b = append(b, `\b`...)
		case '\f':
			b = append(b, `\f`...)
		default:
			b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		}
		start = i + 1
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// bufPool holds the buffers that read request bodies and build answers, so
// that neither allocates once the server is warm.
var bufPool = sync.Pool{New: func() any {
	b := make([]byte, 0, 2048)
	return &b
}}
