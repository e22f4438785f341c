package job

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"
)

// AppendJSON appends r as JSON to dst: the bytes encoding/json's Marshal
// produces for it, without its reflection and without re-validating Meta
// and Response.Body. A worker encodes a result for every attempt, and
// Marshal was a twentieth of its CPU.
//
// Meta and Response.Body must be valid JSON, as they always are in a
// result: Validate checks meta, and a provider stores a body as Body only
// when it is valid JSON. They are appended as they are when they are
// compact and free of the characters Marshal escapes (<, >, &, U+2028,
// U+2029), and otherwise compacted and escaped as Marshal would, which
// also validates them.
func (r *Result) AppendJSON(dst []byte) ([]byte, error) {
	b := append(dst, `{"v":`...)
	b = strconv.AppendInt(b, int64(r.V), 10)
	b = append(b, `,"job_id":`...)
	b = appendString(b, r.JobID)
	b = append(b, `,"provider":`...)
	b = appendString(b, r.Provider)
	b = append(b, `,"task":`...)
	b = appendString(b, r.Task)
	if r.Lane != "" {
		b = append(b, `,"lane":`...)
		b = appendString(b, string(r.Lane))
	}
	if r.Batch != "" {
		b = append(b, `,"batch":`...)
		b = appendString(b, r.Batch)
	}
	b = append(b, `,"attempt":`...)
	b = strconv.AppendInt(b, int64(r.Attempt), 10)
	b = append(b, `,"status":`...)
	b = appendString(b, string(r.Status))
	if r.HTTPStatus != 0 {
		b = append(b, `,"http_status":`...)
		b = strconv.AppendInt(b, int64(r.HTTPStatus), 10)
	}
	if r.Error != "" {
		b = append(b, `,"error":`...)
		b = appendString(b, r.Error)
	}
	if r.ErrorClass != "" {
		b = append(b, `,"error_class":`...)
		b = appendString(b, string(r.ErrorClass))
	}
	b = append(b, `,"latency_ms":`...)
	b = strconv.AppendInt(b, r.LatencyMS, 10)
	var err error
	b = append(b, `,"enqueued_at":`...)
	if b, err = appendTime(b, r.EnqueuedAt, "enqueued_at"); err != nil {
		return dst, err
	}
	b = append(b, `,"started_at":`...)
	if b, err = appendTime(b, r.StartedAt, "started_at"); err != nil {
		return dst, err
	}
	b = append(b, `,"finished_at":`...)
	if b, err = appendTime(b, r.FinishedAt, "finished_at"); err != nil {
		return dst, err
	}
	if r.RetryAt != nil {
		b = append(b, `,"retry_at":`...)
		if b, err = appendTime(b, *r.RetryAt, "retry_at"); err != nil {
			return dst, err
		}
	}
	if r.Response != nil {
		b = append(b, `,"response":`...)
		if b, err = r.Response.appendJSON(b); err != nil {
			return dst, err
		}
	}
	if len(r.Meta) > 0 {
		b = append(b, `,"meta":`...)
		if b, err = appendRaw(b, r.Meta, "meta"); err != nil {
			return dst, err
		}
	}
	b = append(b, `,"worker_id":`...)
	b = appendString(b, r.WorkerID)
	return append(b, '}'), nil
}

// SizeHint is about how many bytes AppendJSON takes for r, so that its
// buffer can be allocated once.
func (r *Result) SizeHint() int {
	// The field names, numbers and three timestamps take about 300 bytes.
	n := 320 + len(r.JobID) + len(r.Provider) + len(r.Task) + len(r.Batch) + len(r.Error) + len(r.Meta) + len(r.WorkerID)
	if p := r.Response; p != nil {
		n += 64 + len(p.Body) + len(p.BodyText) + base64.StdEncoding.EncodedLen(len(p.BodyBase64))
		for k, vs := range p.Headers {
			n += len(k) + 6
			for _, v := range vs {
				n += len(v) + 3
			}
		}
	}
	return n
}

func (p *Response) appendJSON(b []byte) ([]byte, error) {
	b = append(b, '{')
	first := true
	field := func(name string) {
		if !first {
			b = append(b, ',')
		}
		first = false
		b = append(b, name...)
	}
	if len(p.Headers) > 0 {
		field(`"headers":{`)
		// Marshal sorts map keys. A response has a few headers: sort them
		// in a buffer on the stack.
		var buf [32]string
		keys := buf[:0]
		for k := range p.Headers {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, k)
			b = append(b, ':')
			vs := p.Headers[k]
			if vs == nil {
				b = append(b, "null"...)
				continue
			}
			b = append(b, '[')
			for j, v := range vs {
				if j > 0 {
					b = append(b, ',')
				}
				b = appendString(b, v)
			}
			b = append(b, ']')
		}
		b = append(b, '}')
	}
	if len(p.Body) > 0 {
		field(`"body":`)
		var err error
		if b, err = appendRaw(b, p.Body, "response.body"); err != nil {
			return b, err
		}
	}
	if p.BodyText != "" {
		field(`"body_text":`)
		b = appendString(b, p.BodyText)
	}
	if len(p.BodyBase64) > 0 {
		field(`"body_base64":"`)
		b = base64.StdEncoding.AppendEncode(b, p.BodyBase64)
		b = append(b, '"')
	}
	if p.Truncated {
		field(`"truncated":true`)
	}
	return append(b, '}'), nil
}

// appendTime appends t as Marshal does. Results hold UTC times, which
// AppendFormat writes in Marshal's form; anything else takes Marshal's own
// path, which also rejects years outside 0-9999.
func appendTime(b []byte, t time.Time, field string) ([]byte, error) {
	if y := t.Year(); t.Location() == time.UTC && y >= 0 && y <= 9999 {
		b = append(b, '"')
		b = t.AppendFormat(b, time.RFC3339Nano)
		return append(b, '"'), nil
	}
	text, err := t.MarshalJSON()
	if err != nil {
		return b, fmt.Errorf("result %s: %w", field, err)
	}
	return append(b, text...), nil
}

// appendRaw appends raw, valid JSON, as Marshal does: compacted, with <, >,
// &, U+2028 and U+2029 escaped. Raw JSON that needs neither is appended as
// it is, which is the common case and saves Marshal's validation.
func appendRaw(b, raw []byte, field string) ([]byte, error) {
	if rawVerbatim(raw) {
		return append(b, raw...), nil
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, raw); err != nil {
		return b, fmt.Errorf("result %s: %w", field, err)
	}
	out := bytes.NewBuffer(b)
	json.HTMLEscape(out, compact.Bytes())
	return out.Bytes(), nil
}

// rawVerbatim reports whether Marshal would copy raw, valid JSON,
// unchanged: it has no whitespace outside strings and nothing Marshal
// escapes.
func rawVerbatim(raw []byte) bool {
	inString := false
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if !rawSpecial[c] {
			continue
		}
		switch {
		case c == '<' || c == '>' || c == '&':
			return false
		case c == 0xE2:
			if i+2 < len(raw) && raw[i+1] == 0x80 && raw[i+2]&^1 == 0xA8 {
				return false
			}
		case inString && c == '\\':
			i++ // the escaped byte, which may be '"'
		case c == '"':
			inString = !inString
		case !inString: // whitespace
			return false
		}
	}
	return !inString
}

// rawSpecial marks the bytes rawVerbatim looks at; valid JSON is mostly
// made of others.
var rawSpecial = func() (t [256]bool) {
	for _, c := range []byte("<>&\xe2\"\\ \t\n\r") {
		t[c] = true
	}
	return t
}()

const hexDigits = "0123456789abcdef"

// safeChars are the ASCII bytes Marshal writes as they are in a string:
// not a control character, '"', '\\', '<', '>' or '&'.
var safeChars = func() (t [utf8.RuneSelf]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
	}
	return t
}()

// appendString appends s as a JSON string exactly as Marshal does (with its
// default HTML escaping): invalid UTF-8 becomes U+FFFD, and U+2028 and
// U+2029 are escaped.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if safeChars[c] {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '\\', '"':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
