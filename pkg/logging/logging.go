package logging

import (
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/lmittmann/tint"
	"github.com/mattn/go-isatty"
)

// New returns a logger writing to w as cfg says. Zero fields of cfg take
// their defaults; a bad level or format is an error.
func New(w io.Writer, cfg Config) (*slog.Logger, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("logging: %w", err)
	}
	level, _ := cfg.level() // validated above

	term := isTerminal(w)
	if cfg.Format == "text" || (cfg.Format == "auto" && term) {
		return slog.New(tint.NewTextHandler(w, &tint.Options{
			Level:       level,
			ReplaceAttr: redact,
			// Colour codes are noise in a file or pipe.
			NoColor: !term,
		})), nil
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{
		Level:       level,
		ReplaceAttr: redact,
	})), nil
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fd := f.Fd()
	return isatty.IsTerminal(fd) || isatty.IsCygwinTerminal(fd)
}
