package recorder

import (
	"fmt"
	"time"
)

// Config tunes the recorder.
type Config struct {
	// Database is where results go: a SQLite file path, or a PostgreSQL
	// URL (postgres://… or postgresql://…). Default "switchyard.db".
	Database string `koanf:"database"`
	// BatchSize caps the results fetched and committed together. Default 1000.
	BatchSize int `koanf:"batch_size"`
	// FetchMaxWait is how long one fetch waits for a full batch. Default 250ms.
	FetchMaxWait time.Duration `koanf:"fetch_max_wait"`
	// Committers is how many batches are written to the store at once.
	// Default (0): what the store does best, 2 for PostgreSQL and 1 for
	// SQLite, whose single writer only slowed down with a second.
	Committers int `koanf:"committers"`
	// BatchCheckInterval is how often declared batches that received
	// results are counted for completion (see package batch). Default 1s.
	BatchCheckInterval time.Duration `koanf:"batch_check_interval"`
	// API is the HTTP query API over the store.
	API APIConfig `koanf:"api"`
	// Retention bounds how long rows and response bodies are kept.
	Retention RetentionConfig `koanf:"retention"`
}

// APIConfig configures the recorder's HTTP query API.
type APIConfig struct {
	// Listen is the address the API serves on. It binds to loopback unless
	// configured otherwise, because results hold third parties' answers.
	// "-" turns the API off. Default "127.0.0.1:8472".
	Listen string `koanf:"listen"`
	// Token, when set, is the bearer token every request must carry.
	Token string `koanf:"token"`
}

// RetentionConfig says how long the store keeps what. Zero keeps forever.
type RetentionConfig struct {
	// MaxAge deletes jobs (with their attempts) not updated for this long.
	MaxAge time.Duration `koanf:"max_age"`
	// BodyMaxAge clears stored response bodies not updated for this long,
	// keeping the rest of the row; it only matters below MaxAge.
	BodyMaxAge time.Duration `koanf:"body_max_age"`
	// Interval is how often pruning runs. Default 1m.
	Interval time.Duration `koanf:"interval"`
}

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	if c.Database == "" {
		c.Database = "switchyard.db"
	}
	if c.BatchSize == 0 {
		c.BatchSize = 1000
	}
	if c.FetchMaxWait == 0 {
		c.FetchMaxWait = 250 * time.Millisecond
	}
	if c.BatchCheckInterval == 0 {
		c.BatchCheckInterval = time.Second
	}
	if c.API.Listen == "" {
		c.API.Listen = "127.0.0.1:8472"
	}
	if c.Retention.Interval == 0 {
		c.Retention.Interval = time.Minute
	}
	return c
}

// Validate reports the first bad field.
func (c Config) Validate() error {
	switch {
	case c.BatchSize < 1 || c.BatchSize > 10000:
		return fmt.Errorf("batch_size: %d must be between 1 and 10000", c.BatchSize)
	case c.FetchMaxWait < 10*time.Millisecond:
		return fmt.Errorf("fetch_max_wait: %s must be at least 10ms", c.FetchMaxWait)
	case c.Committers < 0 || c.Committers > 16:
		return fmt.Errorf("committers: %d must be between 0 (the store's choice) and 16", c.Committers)
	case c.BatchCheckInterval < 10*time.Millisecond:
		return fmt.Errorf("batch_check_interval: %s must be at least 10ms", c.BatchCheckInterval)
	case c.Retention.MaxAge < 0 || c.Retention.MaxAge > 0 && c.Retention.MaxAge < time.Minute:
		return fmt.Errorf("retention.max_age: %s must be 0 (keep forever) or at least 1m", c.Retention.MaxAge)
	case c.Retention.BodyMaxAge < 0 || c.Retention.BodyMaxAge > 0 && c.Retention.BodyMaxAge < time.Minute:
		return fmt.Errorf("retention.body_max_age: %s must be 0 (keep forever) or at least 1m", c.Retention.BodyMaxAge)
	case c.Retention.Interval < time.Second:
		return fmt.Errorf("retention.interval: %s must be at least 1s", c.Retention.Interval)
	}
	return nil
}
