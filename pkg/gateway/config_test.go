package gateway_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-io/switchyard/pkg/gateway"
)

func TestConfigDefaults(t *testing.T) {
	t.Parallel()
	c := gateway.Config{}.WithDefaults()
	want := gateway.Config{Listen: "127.0.0.1:8473", MaxBody: 1 << 20, MaxStreamBytes: 256 << 20, Window: 1024,
		PublishTimeout: 10 * time.Second, StreamTimeout: 10 * time.Minute, RetryAfter: 5 * time.Second}
	if !equalConfig(c, want) {
		t.Errorf("defaults:\n got %+v\nwant %+v", c, want)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("the defaults do not validate: %v", err)
	}
	c = gateway.Config{Tokens: []string{" a1 ,b2", "c3"}}.WithDefaults()
	if want := []string{"a1", "b2", "c3"}; !slices.Equal(c.Tokens, want) {
		t.Errorf("tokens %q, want %q: split at commas, trimmed", c.Tokens, want)
	}
}

func equalConfig(a, b gateway.Config) bool {
	eq := slices.Equal(a.Tokens, b.Tokens)
	a.Tokens, b.Tokens = nil, nil
	return eq && a.Listen == b.Listen && a.AllowUnauthenticated == b.AllowUnauthenticated && a.MaxBody == b.MaxBody &&
		a.MaxStreamBytes == b.MaxStreamBytes && a.Window == b.Window && a.PublishTimeout == b.PublishTimeout &&
		a.StreamTimeout == b.StreamTimeout && a.RetryAfter == b.RetryAfter
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		cfg     gateway.Config
		wantErr string
	}{
		{name: "loopback without tokens", cfg: gateway.Config{Listen: "127.0.0.1:0"}},
		{name: "localhost without tokens", cfg: gateway.Config{Listen: "localhost:8473"}},
		{name: "IPv6 loopback without tokens", cfg: gateway.Config{Listen: "[::1]:8473"}},
		{name: "every interface with tokens", cfg: gateway.Config{Listen: ":8473", Tokens: []string{"s3cret"}}},
		{name: "every interface, authenticated in front", cfg: gateway.Config{Listen: "0.0.0.0:8473", AllowUnauthenticated: true}},
		{name: "every interface without tokens", cfg: gateway.Config{Listen: ":8473"}, wantErr: "tokens: required when listen (:8473) is not a loopback address"},
		{name: "a host name without tokens", cfg: gateway.Config{Listen: "gateway.internal:8473"}, wantErr: "tokens: required"},
		{name: "no port", cfg: gateway.Config{Listen: "127.0.0.1"}, wantErr: "listen: address 127.0.0.1: missing port in address"},
		{name: "empty token", cfg: gateway.Config{Tokens: []string{"a", ""}}, wantErr: "tokens[1]: must be non-empty"},
		{name: "token with a space", cfg: gateway.Config{Tokens: []string{"a b"}}, wantErr: "tokens[0]: must be non-empty, without spaces"},
		{name: "tiny body", cfg: gateway.Config{MaxBody: 100}, wantErr: "max_body: 100 must be between 1024"},
		{name: "stream below body", cfg: gateway.Config{MaxBody: 4096, MaxStreamBytes: 2048}, wantErr: "max_stream_bytes: 2048 must be at least max_body (4096)"},
		{name: "window", cfg: gateway.Config{Window: -1}, wantErr: "window: -1 must be between 1 and 65536"},
		{name: "publish timeout", cfg: gateway.Config{PublishTimeout: time.Millisecond}, wantErr: "publish_timeout: 1ms must be at least 10ms"},
		{name: "stream timeout", cfg: gateway.Config{StreamTimeout: time.Millisecond}, wantErr: "stream_timeout: 1ms must be at least 1s"},
		{name: "retry after", cfg: gateway.Config{RetryAfter: 1500 * time.Millisecond}, wantErr: "retry_after: 1.5s must be a whole number of seconds"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tt.cfg.WithDefaults().Validate()
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}
