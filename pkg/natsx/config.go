package natsx

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// Config says how a service reaches NATS.
type Config struct {
	// URL is one or more comma-separated server URLs. Default
	// nats://127.0.0.1:4222.
	URL string `koanf:"url"`
	// Name is the connection name shown by `nats server report connections`.
	Name string `koanf:"name"`
	// User and Password, or Token, or NkeyFile, or CredsFile authenticate
	// the connection; set at most one of them.
	User     string `koanf:"user"`
	Password string `koanf:"password"`
	Token    string `koanf:"token"`
	// NkeyFile holds an nkey user seed (SU…), for servers that list users by
	// public nkey.
	NkeyFile string `koanf:"nkey_file"`
	// CredsFile is a decentralised-auth creds file (a user JWT and its seed).
	CredsFile string `koanf:"creds_file"`
	// TLS secures the connection; it is off unless CA or Cert is set or
	// the URL says tls://.
	TLS TLSConfig `koanf:"tls"`
	// Replicas is the replica count for the streams this service creates.
	// Default 1; use 3 on a cluster.
	Replicas int `koanf:"replicas"`
	// ConnectTimeout bounds the first connection. Default 5s.
	ConnectTimeout time.Duration `koanf:"connect_timeout"`
}

// TLSConfig names the PEM files of a TLS connection to NATS.
type TLSConfig struct {
	// CA verifies the server's certificate; empty means the system roots.
	CA string `koanf:"ca"`
	// Cert and Key are the client certificate and its key, for servers
	// that verify clients (`verify: true`); set both or neither.
	Cert string `koanf:"cert"`
	Key  string `koanf:"key"`
	// HandshakeFirst starts TLS before the server's INFO, for servers with
	// `handshake_first: true` (such as behind a TLS-terminating proxy).
	HandshakeFirst bool `koanf:"handshake_first"`
}

// Enabled reports whether the connection must use TLS.
func (t TLSConfig) Enabled() bool {
	return t.CA != "" || t.Cert != "" || t.HandshakeFirst
}

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	if c.URL == "" {
		c.URL = "nats://127.0.0.1:4222"
	}
	if c.Replicas == 0 {
		c.Replicas = 1
	}
	if c.ConnectTimeout == 0 {
		c.ConnectTimeout = 5 * time.Second
	}
	return c
}

// Validate reports the first bad field.
func (c Config) Validate() error {
	for _, one := range strings.Split(c.URL, ",") {
		if u, err := url.Parse(strings.TrimSpace(one)); err != nil || u.Host == "" {
			return fmt.Errorf("url: %q is not a NATS URL", RedactURL(c.URL))
		}
	}
	if c.Replicas != 1 && c.Replicas != 3 && c.Replicas != 5 {
		return fmt.Errorf("replicas: %d must be 1, 3 or 5", c.Replicas)
	}
	var methods []string
	for _, m := range []struct{ key, value string }{
		{"user", c.User}, {"token", c.Token}, {"nkey_file", c.NkeyFile}, {"creds_file", c.CredsFile},
	} {
		if m.value != "" {
			methods = append(methods, m.key)
		}
	}
	if len(methods) > 1 {
		return fmt.Errorf("%s: set one of user, token, nkey_file or creds_file, not %s", methods[1], strings.Join(methods, " and "))
	}
	if c.Password != "" && c.User == "" {
		return errors.New("password: needs a user")
	}
	if (c.TLS.Cert == "") != (c.TLS.Key == "") {
		return errors.New("tls: set cert and key together")
	}
	if c.ConnectTimeout <= 0 {
		return fmt.Errorf("connect_timeout: %s must be positive", c.ConnectTimeout)
	}
	return nil
}
