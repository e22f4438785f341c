// Package logging builds the slog.Logger every Switchyard service uses, so
// that all of them log the same way: tint's readable lines when a person is
// watching a terminal, JSON when a machine is collecting, and never a
// credential in either. Secrets are redacted by attribute name (password,
// token, authorization, ...) and by type (Secret), because the workers handle
// API keys for third parties and one careless log line must not leak them.
package logging
