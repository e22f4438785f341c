// Package natstest starts real NATS servers with JetStream for tests: on a
// random loopback port, with file storage in t.TempDir(), shut down by
// t.Cleanup.
package natstest

import (
	"context"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-io/switchyard/pkg/natsx"
)

// Server is a running embedded server that can be restarted on the same
// port with the same storage.
type Server struct {
	t        testing.TB
	storeDir string
	port     int
	srv      *server.Server
}

// Start runs a server and registers its shutdown.
func Start(t testing.TB) *Server {
	t.Helper()
	s := &Server{t: t, storeDir: t.TempDir(), port: -1}
	s.start()
	s.port = s.srv.Addr().(*net.TCPAddr).Port
	t.Cleanup(s.Stop)
	return s
}

func (s *Server) start() {
	s.t.Helper()
	srv, err := natsx.RunEmbedded(natsx.EmbeddedConfig{Host: "127.0.0.1", Port: s.port, StoreDir: s.storeDir})
	if err != nil {
		s.t.Fatalf("start nats: %v", err)
	}
	s.srv = srv
}

// URL is the client URL.
func (s *Server) URL() string { return s.srv.ClientURL() }

// Stop shuts the server down and waits for it. It is safe to call twice.
func (s *Server) Stop() {
	if s.srv != nil {
		s.srv.Shutdown()
		s.srv.WaitForShutdown()
	}
}

// Restart stops the server and starts it again on the same port and
// storage, as after a crash and reboot.
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	s.start()
}

// Connect opens a client connection that reconnects forever, closed by
// t.Cleanup.
func (s *Server) Connect(t testing.TB) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(s.URL(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("jetstream: %v", err)
	}
	return nc, js
}

// ApplyStreams creates the Switchyard streams.
func (s *Server) ApplyStreams(t testing.TB, js jetstream.JetStream) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := natsx.ApplyStreams(ctx, js, 1, Logger(t)); err != nil {
		t.Fatalf("apply streams: %v", err)
	}
}

// Logger returns a logger that writes to the test log.
func Logger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(string(p[:len(p)-1]))
	return len(p), nil
}
