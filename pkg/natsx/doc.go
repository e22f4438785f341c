// Package natsx is everything Switchyard does to NATS itself rather than
// through it: connecting with the configured credentials, running an
// embedded server for the one-command default, and applying the stream and
// consumer definitions of package streams idempotently at start.
package natsx
