package recorder

import (
	"fmt"
	"time"
)

// Config tunes the recorder.
type Config struct {
	// Database is where results go: a SQLite file path. Default
	// "switchyard.db".
	Database string `koanf:"database"`
	// BatchSize caps the results fetched and committed together. Default 1000.
	BatchSize int `koanf:"batch_size"`
	// FetchMaxWait is how long one fetch waits for a full batch. Default 250ms.
	FetchMaxWait time.Duration `koanf:"fetch_max_wait"`
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
	return c
}

// Validate reports the first bad field.
func (c Config) Validate() error {
	switch {
	case c.BatchSize < 1 || c.BatchSize > 10000:
		return fmt.Errorf("batch_size: %d must be between 1 and 10000", c.BatchSize)
	case c.FetchMaxWait < 10*time.Millisecond:
		return fmt.Errorf("fetch_max_wait: %s must be at least 10ms", c.FetchMaxWait)
	}
	return nil
}
