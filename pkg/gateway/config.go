package gateway

import (
	"fmt"
	"net"
	"strings"
	"time"
)

// Config configures the gateway: the `gateway` section of the Switchyard
// configuration. Sizes are bytes.
type Config struct {
	// Listen is the address the gateway serves on. Default
	// "127.0.0.1:8473": loopback, because whoever reaches the gateway
	// makes calls with the providers' credentials.
	Listen string `koanf:"listen"`
	// Tokens are the bearer tokens accepted on /v1; any one of them will
	// do, so a token can be rotated by adding the new one, moving the
	// callers, then removing the old one. A value holding commas is split
	// at them, so that SWITCHYARD_GATEWAY__TOKENS=a,b sets two. Empty
	// means no authentication, which Validate only allows on a loopback
	// Listen unless AllowUnauthenticated is set.
	Tokens []string `koanf:"tokens"`
	// AllowUnauthenticated lets the gateway listen beyond loopback without
	// tokens, for when something in front of it (a mesh, a proxy)
	// authenticates callers. Default false.
	AllowUnauthenticated bool `koanf:"allow_unauthenticated"`
	// MaxBody caps the body of an application/json request, and each line
	// of an NDJSON stream. Default 1 MiB.
	MaxBody int64 `koanf:"max_body"`
	// MaxStreamBytes caps the body of an NDJSON request. Default 256 MiB.
	MaxStreamBytes int64 `koanf:"max_stream_bytes"`
	// Window bounds the jobs of one request that await the stream's
	// acknowledgement at once; with MaxBody it bounds the memory an
	// NDJSON stream holds. Default 1024.
	Window int `koanf:"window"`
	// PublishTimeout bounds how long a request waits for JetStream to
	// store its jobs, retries included, before it is answered 503. Default
	// 10s.
	PublishTimeout time.Duration `koanf:"publish_timeout"`
	// StreamTimeout bounds one NDJSON request from its first byte to its
	// answer. Default 10m.
	StreamTimeout time.Duration `koanf:"stream_timeout"`
	// RetryAfter is what a 503 tells callers to wait (Retry-After, whole
	// seconds). Default 5s.
	RetryAfter time.Duration `koanf:"retry_after"`
}

// Defaults of Config.
const (
	DefaultListen         = "127.0.0.1:8473"
	DefaultMaxBody        = 1 << 20
	DefaultMaxStreamBytes = 256 << 20
	DefaultWindow         = 1024
	DefaultPublishTimeout = 10 * time.Second
	DefaultStreamTimeout  = 10 * time.Minute
	DefaultRetryAfter     = 5 * time.Second
)

// WithDefaults returns c with every zero field set to its default, and
// Tokens split at commas and trimmed.
func (c Config) WithDefaults() Config {
	if c.Listen == "" {
		c.Listen = DefaultListen
	}
	if len(c.Tokens) > 0 {
		var tokens []string
		for _, t := range c.Tokens {
			for part := range strings.SplitSeq(t, ",") {
				tokens = append(tokens, strings.TrimSpace(part))
			}
		}
		c.Tokens = tokens
	}
	if c.MaxBody == 0 {
		c.MaxBody = DefaultMaxBody
	}
	if c.MaxStreamBytes == 0 {
		c.MaxStreamBytes = DefaultMaxStreamBytes
	}
	if c.Window == 0 {
		c.Window = DefaultWindow
	}
	if c.PublishTimeout == 0 {
		c.PublishTimeout = DefaultPublishTimeout
	}
	if c.StreamTimeout == 0 {
		c.StreamTimeout = DefaultStreamTimeout
	}
	if c.RetryAfter == 0 {
		c.RetryAfter = DefaultRetryAfter
	}
	return c
}

// Validate reports the first bad field, named by its key.
func (c Config) Validate() error {
	host, _, err := net.SplitHostPort(c.Listen)
	if err != nil {
		return fmt.Errorf("listen: %v", err)
	}
	for i, t := range c.Tokens {
		if t == "" || strings.ContainsFunc(t, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
			return fmt.Errorf("tokens[%d]: must be non-empty, without spaces or control characters", i)
		}
	}
	switch {
	case len(c.Tokens) == 0 && !c.AllowUnauthenticated && !loopbackHost(host):
		return fmt.Errorf("tokens: required when listen (%s) is not a loopback address, since whoever reaches the gateway makes calls with the providers' credentials; set tokens, or allow_unauthenticated: true if something in front of the gateway authenticates callers", c.Listen)
	case c.MaxBody < 1<<10 || c.MaxBody > 64<<20:
		return fmt.Errorf("max_body: %d must be between 1024 (1 KiB) and 67108864 (64 MiB)", c.MaxBody)
	case c.MaxStreamBytes < c.MaxBody:
		return fmt.Errorf("max_stream_bytes: %d must be at least max_body (%d)", c.MaxStreamBytes, c.MaxBody)
	case c.Window < 1 || c.Window > 65536:
		return fmt.Errorf("window: %d must be between 1 and 65536", c.Window)
	case c.PublishTimeout < 10*time.Millisecond:
		return fmt.Errorf("publish_timeout: %s must be at least 10ms", c.PublishTimeout)
	case c.StreamTimeout < time.Second:
		return fmt.Errorf("stream_timeout: %s must be at least 1s", c.StreamTimeout)
	case c.RetryAfter < time.Second || c.RetryAfter%time.Second != 0:
		return fmt.Errorf("retry_after: %s must be a whole number of seconds, at least 1s", c.RetryAfter)
	}
	return nil
}

// loopbackHost reports whether host, from a listen address, is only
// reachable from this machine: localhost or a loopback IP. An empty host
// means every interface.
func loopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
