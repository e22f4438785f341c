// Package pgtest gives tests a real PostgreSQL.
//
// URL returns the address of a fresh, empty database for one test:
//
//   - when TEST_POSTGRES_URL is set, on that server (a URL whose user
//     may create databases; PostgreSQL 13 or later), which is how CI and
//     developers with a running server use it;
//   - otherwise on a private server that the first call starts from the
//     PostgreSQL binaries on the machine and that the whole test binary
//     shares.
//
// A package that relies on the shared server must run its tests through
// Main, which stops that server when they end (URL fails the test
// otherwise):
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
//
// Start runs a private server for one test, which can Stop and Start it to
// take the database away mid-run.
//
// Servers are found through `pg_config --bindir`, /usr/lib/postgresql/*/bin
// or PATH. Without them a test is skipped, unless TEST_REQUIRE_POSTGRES
// is 1 (as in CI), where it fails. As root, servers run as the postgres user,
// since PostgreSQL refuses to run as root. No server outlives the test
// binary: on Linux each is started with a parent-death signal, so that even
// a test binary that panics or is killed takes its servers down with it
// (the next test binary to start a server removes what such a one left in
// the temporary directory).
//
// The variables are not named SWITCHYARD_…: the services read every
// SWITCHYARD_ variable as a configuration key and refuse unknown ones, and
// tests start services in the same environment.
package pgtest
