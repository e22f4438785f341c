// Package faulttest holds the fault suite: tests that run the worker, the
// recorder and nats-server as real separate processes, push thousands of
// jobs through them, break one part mid-burst (SIGKILL a worker, restart
// NATS, lose a cluster node, kill the recorder, stop its database, take the
// provider down) and check that every job is recorded exactly once. They
// print what they measured (duplicate calls, recovery time) with t.Logf;
// RELIABILITY.md at the repository root collects those figures.
//
// FAULT_JOBS sets the jobs per scenario (default 10000) and FAULT_OUTAGE
// the provider outage (default 15s), for longer manual runs; FAULT_LOGS
// names a directory that keeps each test's process logs and configs;
// FAULT_TRACE=1 logs the recorder's and the workers' consumers every 2 s.
package faulttest
