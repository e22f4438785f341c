package mockapi

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

// TestEchoJSON: the hand-written encoding reads back as the echo, and is
// byte for byte encoding/json's where that does not escape for HTML.
func TestEchoJSON(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		e    echo
	}{
		{"minimal", echo{N: 1, Status: 200, Method: "GET", Path: "/"}},
		{"full", echo{N: 1 << 40, Status: 503, Method: "POST", Path: "/v1/a%20b", Query: "x=1&y=2", IdempotencyKey: "k-1", Calls: 2, BodyBytes: 1 << 20, Error: "simulated outage"}},
		{"escapes", echo{Method: "GET", Path: `/"q"\back`, IdempotencyKey: "tab\tnl\ncr\r\x00\x1f\x7f", Error: "é ü 日本"}},
		{"invalid utf-8", echo{Method: "GET", Path: "/", IdempotencyKey: "a\xffb\xc3"}},
		{"html", echo{Method: "GET", Path: "/<script>&</script>", Query: "\u2028"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			checkEchoJSON(t, tt.e)
		})
	}
}

func checkEchoJSON(t *testing.T, e echo) {
	t.Helper()
	got := e.appendJSON(nil)
	var back echo
	if err := json.Unmarshal(got, &back); err != nil {
		t.Fatalf("%q: %v", got, err)
	}
	want, plain := e, true
	for _, s := range []*string{&want.Method, &want.Path, &want.Query, &want.IdempotencyKey, &want.Error} {
		// encoding/json writes U+FFFD for invalid UTF-8 as \ufffd, and
		// escapes U+2028 and U+2029 for JavaScript; the bytes differ.
		plain = plain && utf8.ValidString(*s) && !strings.ContainsAny(*s, "\u2028\u2029")
		*s = strings.ToValidUTF8(*s, "\ufffd")
	}
	if back != want {
		t.Errorf("decoded %+v\nwant    %+v", back, want)
	}
	var std bytes.Buffer
	enc := json.NewEncoder(&std)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(e); err != nil {
		t.Fatal(err)
	}
	if plain && std.String() != string(got) {
		t.Errorf("got  %s\nwant %s", got, std.Bytes())
	}
}

func FuzzEchoJSON(f *testing.F) {
	f.Add("GET", "/v1/x", "a=1", "key", "oops")
	f.Add("\x00", "\"\\", "\xff", "\u2028", "\t")
	f.Add("\b", "\f", "\x1f", "\r\n", "\x7f")
	f.Fuzz(func(t *testing.T, method, path, query, key, msg string) {
		checkEchoJSON(t, echo{N: 7, Status: 200, Method: method, Path: path, Query: query, IdempotencyKey: key, Calls: 3, BodyBytes: 9, Error: msg})
	})
}
