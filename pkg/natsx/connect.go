package natsx

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/nats-io/nats.go"
)

// Connect opens a connection that reconnects forever and logs its state
// changes. The first connection must succeed within cfg.ConnectTimeout.
func Connect(cfg Config, logger *slog.Logger) (*nats.Conn, error) {
	opts := []nats.Option{
		nats.Name(cfg.Name),
		nats.Timeout(cfg.ConnectTimeout),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.ReconnectJitter(250*time.Millisecond, time.Second),
		// Workers publish thousands of results a second; a bigger buffer
		// rides out a short reconnect instead of failing publishes.
		nats.ReconnectBufSize(64 << 20),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil { // nil when we closed the connection ourselves
				logger.Warn("nats disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			logger.Info("nats reconnected", "url", nc.ConnectedUrlRedacted())
		}),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			subject := ""
			if sub != nil {
				subject = sub.Subject
			}
			logger.Error("nats async error", "subject", subject, "err", err)
		}),
	}
	auth, err := authOptions(cfg)
	if err != nil {
		return nil, err
	}
	opts = append(opts, auth...)
	nc, err := nats.Connect(cfg.URL, opts...)
	if err != nil {
		return nil, fmt.Errorf("connect to NATS at %s: %w", RedactURL(cfg.URL), err)
	}
	return nc, nil
}

// authOptions turns the credentials and TLS settings of cfg into options.
// Files are read here, so a missing one fails the start naming its key.
func authOptions(cfg Config) ([]nats.Option, error) {
	var opts []nats.Option
	switch {
	case cfg.CredsFile != "":
		if _, err := os.Stat(cfg.CredsFile); err != nil {
			return nil, fmt.Errorf("nats.creds_file: %w", err)
		}
		opts = append(opts, nats.UserCredentials(cfg.CredsFile))
	case cfg.NkeyFile != "":
		o, err := nats.NkeyOptionFromSeed(cfg.NkeyFile)
		if err != nil {
			return nil, fmt.Errorf("nats.nkey_file: %w", err)
		}
		opts = append(opts, o)
	case cfg.Token != "":
		opts = append(opts, nats.Token(cfg.Token))
	case cfg.User != "":
		opts = append(opts, nats.UserInfo(cfg.User, cfg.Password))
	}
	t := cfg.TLS
	if t.CA != "" {
		if _, err := os.Stat(t.CA); err != nil {
			return nil, fmt.Errorf("nats.tls.ca: %w", err)
		}
		opts = append(opts, nats.RootCAs(t.CA))
	}
	if t.Cert != "" {
		// Load the pair now: nats.ClientCert would only fail at dial, with
		// an error that does not say which key is wrong.
		if _, err := tls.LoadX509KeyPair(t.Cert, t.Key); err != nil {
			return nil, fmt.Errorf("nats.tls.cert, nats.tls.key: %w", err)
		}
		opts = append(opts, nats.ClientCert(t.Cert, t.Key))
	}
	if t.HandshakeFirst {
		opts = append(opts, nats.TLSHandshakeFirst())
	}
	if t.Enabled() {
		opts = append(opts, nats.Secure())
	}
	return opts, nil
}
