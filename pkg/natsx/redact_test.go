package natsx_test

import (
	"strings"
	"testing"
	"time"

	"github.com/switchyard-io/switchyard/pkg/natsx"
)

func TestRedactURL(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"nats://127.0.0.1:4222", "nats://127.0.0.1:4222"},
		{"nats://alice:pa55word@127.0.0.1:4222", "nats://[REDACTED]@127.0.0.1:4222"},
		{"nats://s3cr3t-token@n1:4222, nats://n2:4222", "nats://[REDACTED]@n1:4222, nats://n2:4222"},
		{"tls://a:b@n1:4222,tls://c:d@n2:4222", "tls://[REDACTED]@n1:4222,tls://[REDACTED]@n2:4222"},
		{"nats://a:p@ss%zz@host", "[REDACTED URL]"},
	}
	for _, tt := range tests {
		if got := natsx.RedactURL(tt.in); got != tt.want {
			t.Errorf("RedactURL(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestConnectErrorsHideCredentials: neither a failed connection nor a bad
// URL repeats the password or token written in the URL.
func TestConnectErrorsHideCredentials(t *testing.T) {
	t.Parallel()
	for _, u := range []string{"nats://alice:pa55word-secret@127.0.0.1:1", "nats://tok3n-secret@127.0.0.1:1", "nats://alice:pa55word-secret@[::1"} {
		cfg := natsx.Config{URL: u}.WithDefaults()
		cfg.ConnectTimeout = 200 * time.Millisecond
		var msgs []string
		if err := cfg.Validate(); err != nil {
			msgs = append(msgs, err.Error())
		} else if _, err := natsx.Connect(cfg, nil); err != nil {
			msgs = append(msgs, err.Error())
		} else {
			t.Fatalf("%s: connected", u)
		}
		for _, m := range msgs {
			if strings.Contains(m, "pa55word-secret") || strings.Contains(m, "tok3n-secret") {
				t.Errorf("error repeats a credential: %s", m)
			}
		}
	}
}
