package worker

import (
	"fmt"
	"net"
	"os"
	"time"

	"github.com/google/uuid"
)

// DefaultHTTPListen is where a worker serves metrics and health probes
// unless worker.http.listen says otherwise.
const DefaultHTTPListen = "127.0.0.1:8474"

// Config tunes a worker process. Provider limits live with each provider.
type Config struct {
	// ID names this replica in results and logs, and in the fleet whose
	// replicas share each provider's limits: it must be unique among the
	// running replicas: Start fails with limit.ErrReplicaInUse while
	// another replica heartbeats under it (a replica restarted under its
	// own id waits up to membership_ttl for its old heartbeat to expire).
	// Default: hostname plus a random suffix.
	ID string `koanf:"id"`
	// MaxBatch caps one fetch. Default 256.
	MaxBatch int `koanf:"max_batch"`
	// MaxPulls is how many fetches each lane keeps outstanding while it has
	// a backlog, so the server fills one while the worker starts the calls
	// of another. An idle lane keeps one. Default 4.
	MaxPulls int `koanf:"max_pulls"`
	// FetchMaxWait is how long one fetch waits for messages when a lane is
	// empty. Default 2s.
	FetchMaxWait time.Duration `koanf:"fetch_max_wait"`
	// ShutdownGrace is how long in-flight calls may run after a stop before
	// they are cancelled and their jobs naked for another replica. Default 30s.
	ShutdownGrace time.Duration `koanf:"shutdown_grace"`
	// UnroutedInterval is how often the worker looks for jobs that no work
	// consumer covers (an unknown provider or lane) and dead-letters them.
	// Default 2s.
	UnroutedInterval time.Duration `koanf:"unrouted_interval"`
	// MembershipTTL is how long this replica's heartbeat lives in the
	// LIMITS bucket, where the replicas find each other to share each
	// provider's fleet-wide limits. A replica that dies drops out of the
	// others' shares within about this plus a second (they run below the
	// limit meanwhile); it heartbeats every third of it. Default 3s.
	MembershipTTL time.Duration `koanf:"membership_ttl"`
	// HTTP is the worker's own small HTTP server for operators: metrics
	// and health probes.
	HTTP HTTPConfig `koanf:"http"`
}

// HTTPConfig configures the worker's HTTP server, which serves GET
// /metrics (Prometheus), /healthz (alive) and /readyz (connected to NATS,
// streams present, not stopping).
type HTTPConfig struct {
	// Listen is the address to serve on; "-" turns the server off. It
	// binds to loopback unless configured otherwise: in a container, set
	// it to :8474 for the kubelet's probes and Prometheus. Default
	// "127.0.0.1:8474".
	Listen string `koanf:"listen"`
}

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	if c.ID == "" {
		host, _ := os.Hostname()
		if host == "" {
			host = "worker"
		}
		c.ID = host + "-" + uuid.NewString()[:8]
	}
	if c.MaxBatch == 0 {
		c.MaxBatch = 256
	}
	if c.MaxPulls == 0 {
		c.MaxPulls = 4
	}
	if c.FetchMaxWait == 0 {
		c.FetchMaxWait = 2 * time.Second
	}
	if c.ShutdownGrace == 0 {
		c.ShutdownGrace = 30 * time.Second
	}
	if c.UnroutedInterval == 0 {
		c.UnroutedInterval = 2 * time.Second
	}
	if c.MembershipTTL == 0 {
		c.MembershipTTL = 3 * time.Second
	}
	if c.HTTP.Listen == "" {
		c.HTTP.Listen = DefaultHTTPListen
	}
	return c
}

// Validate reports the first bad field.
func (c Config) Validate() error {
	switch {
	case c.MaxBatch < 1 || c.MaxBatch > 10000:
		return fmt.Errorf("max_batch: %d must be between 1 and 10000", c.MaxBatch)
	case c.MaxPulls < 1 || c.MaxPulls > 64:
		return fmt.Errorf("max_pulls: %d must be between 1 and 64", c.MaxPulls)
	case c.FetchMaxWait < 100*time.Millisecond:
		return fmt.Errorf("fetch_max_wait: %s must be at least 100ms", c.FetchMaxWait)
	case c.ShutdownGrace < 0:
		return fmt.Errorf("shutdown_grace: %s must not be negative", c.ShutdownGrace)
	case c.UnroutedInterval < 100*time.Millisecond:
		return fmt.Errorf("unrouted_interval: %s must be at least 100ms", c.UnroutedInterval)
	case c.MembershipTTL < time.Second || c.MembershipTTL > time.Minute:
		return fmt.Errorf("membership_ttl: %s must be between 1s and 1m (NATS message TTLs count whole seconds)", c.MembershipTTL)
	}
	if c.HTTP.Listen != "-" {
		if _, port, err := net.SplitHostPort(c.HTTP.Listen); err != nil || port == "" {
			return fmt.Errorf("http.listen: %q must be host:port, :port or - (off)", c.HTTP.Listen)
		}
	}
	return nil
}
