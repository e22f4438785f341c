package natsx

import (
	"errors"
	"fmt"
	"net/url"
	"time"
)

// Config says how a service reaches NATS.
type Config struct {
	// URL is one or more comma-separated server URLs. Default
	// nats://127.0.0.1:4222.
	URL string `koanf:"url"`
	// Name is the connection name shown by `nats server report connections`.
	Name string `koanf:"name"`
	// User and Password, or Token, or CredsFile authenticate the connection.
	User      string `koanf:"user"`
	Password  string `koanf:"password"`
	Token     string `koanf:"token"`
	CredsFile string `koanf:"creds_file"`
	// Replicas is the replica count for the streams this service creates.
	// Default 1; use 3 on a cluster.
	Replicas int `koanf:"replicas"`
	// ConnectTimeout bounds the first connection. Default 5s.
	ConnectTimeout time.Duration `koanf:"connect_timeout"`
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
	if u, err := url.Parse(c.URL); err != nil || u.Host == "" {
		return fmt.Errorf("url: %q is not a NATS URL", RedactURL(c.URL))
	}
	if c.Replicas != 1 && c.Replicas != 3 && c.Replicas != 5 {
		return fmt.Errorf("replicas: %d must be 1, 3 or 5", c.Replicas)
	}
	if c.Token != "" && c.User != "" {
		return errors.New("token: set a token or a user, not both")
	}
	if c.ConnectTimeout <= 0 {
		return fmt.Errorf("connect_timeout: %s must be positive", c.ConnectTimeout)
	}
	return nil
}
