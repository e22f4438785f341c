package pgtest_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/switchyard-io/switchyard/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func connect(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func TestURLGivesFreshDatabases(t *testing.T) {
	a, b := pgtest.URL(t), pgtest.URL(t)
	if a == b {
		t.Fatalf("two calls gave the same database %s", a)
	}
	ctx := context.Background()
	ca := connect(t, a)
	if _, err := ca.Exec(ctx, `CREATE TABLE t (x int)`); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := connect(t, b).QueryRow(ctx,
		`SELECT count(*) FROM pg_tables WHERE schemaname = 'public'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("the second database has %d tables, want none", n)
	}
}

func TestStopStart(t *testing.T) {
	if os.Getenv(pgtest.EnvURL) != "" {
		t.Log("runs a private server even with " + pgtest.EnvURL + " set")
	}
	s := pgtest.Start(t)
	url := s.CreateDatabase(t)
	ctx := context.Background()
	conn := connect(t, url)
	if _, err := conn.Exec(ctx, `CREATE TABLE t (x int); INSERT INTO t VALUES (42)`); err != nil {
		t.Fatal(err)
	}

	s.Stop()
	s.Stop() // a no-op
	if err := conn.Ping(ctx); err == nil {
		t.Fatal("Ping succeeded on a stopped server")
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if c, err := pgx.Connect(cctx, url); err == nil {
		c.Close(ctx)
		t.Fatal("connected to a stopped server")
	}

	s.Start()
	var x int
	if err := connect(t, url).QueryRow(ctx, `SELECT x FROM t`).Scan(&x); err != nil || x != 42 {
		t.Fatalf("after restart: x = %d, %v; want 42", x, err)
	}
	if got := s.URL("postgres"); got == "" || s.Port() == 0 {
		t.Errorf("URL %q, port %d", got, s.Port())
	}
}
