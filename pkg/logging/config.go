package logging

import (
	"fmt"
	"log/slog"
)

// Config chooses the log level and format.
type Config struct {
	// Level is debug, info, warn or error. Default info.
	Level string `koanf:"level"`
	// Format is auto (tint on a terminal, JSON otherwise), text or json.
	// Default auto.
	Format string `koanf:"format"`
}

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	if c.Level == "" {
		c.Level = "info"
	}
	if c.Format == "" {
		c.Format = "auto"
	}
	return c
}

// Validate reports the first bad field.
func (c Config) Validate() error {
	if _, err := c.level(); err != nil {
		return err
	}
	switch c.Format {
	case "auto", "text", "json":
		return nil
	}
	return fmt.Errorf("format: %q must be auto, text or json", c.Format)
}

// level accepts only the four names, not slog's "info+2" forms, so a config
// means the same thing to a reader as to the program.
func (c Config) level() (slog.Level, error) {
	switch c.Level {
	case "debug":
		return slog.LevelDebug, nil
	case "info":
		return slog.LevelInfo, nil
	case "warn":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("level: %q must be debug, info, warn or error", c.Level)
}
