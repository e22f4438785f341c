package natstest

import (
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// AuthServer is a running embedded server that admits one user with a
// password, for tests of what happens to credentials.
type AuthServer struct {
	srv *server.Server
}

// StartWithPassword runs a JetStream server that requires user and
// password, logging everything it says (debug and trace included) to
// logger, and registers its shutdown.
func StartWithPassword(t testing.TB, user, password string, logger *slog.Logger) *AuthServer {
	t.Helper()
	opts := &server.Options{
		ServerName: "switchyard-auth-test",
		Host:       "127.0.0.1",
		Port:       -1,
		JetStream:  true,
		StoreDir:   t.TempDir(),
		NoSigs:     true,
		MaxPayload: 8 << 20,
		Username:   user,
		Password:   password,
		Debug:      true,
		Trace:      true,
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		t.Fatalf("start nats: %v", err)
	}
	srv.SetLoggerV2(slogServerLogger{logger}, true, true, false)
	go srv.Start()
	if !srv.ReadyForConnections(30 * time.Second) {
		srv.Shutdown()
		t.Fatal("start nats: not ready within 30s")
	}
	t.Cleanup(func() {
		srv.Shutdown()
		srv.WaitForShutdown()
	})
	return &AuthServer{srv: srv}
}

// URL is the client URL, without credentials.
func (s *AuthServer) URL() string { return s.srv.ClientURL() }

// slogServerLogger sends every line of the server to a slog logger.
type slogServerLogger struct{ l *slog.Logger }

func (s slogServerLogger) Noticef(format string, v ...any) { s.l.Info(fmt.Sprintf(format, v...)) }
func (s slogServerLogger) Warnf(format string, v ...any)   { s.l.Warn(fmt.Sprintf(format, v...)) }
func (s slogServerLogger) Fatalf(format string, v ...any)  { s.l.Error(fmt.Sprintf(format, v...)) }
func (s slogServerLogger) Errorf(format string, v ...any)  { s.l.Error(fmt.Sprintf(format, v...)) }
func (s slogServerLogger) Debugf(format string, v ...any)  { s.l.Debug(fmt.Sprintf(format, v...)) }
func (s slogServerLogger) Tracef(format string, v ...any)  { s.l.Debug(fmt.Sprintf(format, v...)) }
