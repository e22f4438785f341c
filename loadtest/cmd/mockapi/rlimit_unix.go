//go:build unix

package main

import (
	"log/slog"
	"syscall"
)

// wantOpenFiles is what 10,000 connections in flight, plus some, need.
const wantOpenFiles = 16384

// raiseOpenFiles lifts the soft limit on open files to the hard limit: each
// connection is a file, and a soft limit of 1,024 would stall a load test
// at its first thousand calls with "too many open files". The Go runtime
// does the same at start on most systems; doing it here as well makes the
// mock's need explicit and says so in the log when the hard limit is low.
func raiseOpenFiles(logger *slog.Logger) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		logger.Warn("cannot read the open-file limit", "err", err)
		return
	}
	if rl.Cur < rl.Max {
		soft := rl.Cur
		rl.Cur = rl.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
			logger.Warn("cannot raise the open-file limit", "soft", soft, "hard", rl.Max, "err", err)
			return
		}
	}
	if rl.Cur < wantOpenFiles {
		logger.Warn("open-file limit is low for thousands of connections; raise the hard limit (ulimit -Hn)", "limit", rl.Cur, "want", wantOpenFiles)
	}
}
