package pgtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Environment variables that change what pgtest does.
const (
	// EnvURL names a server to create test databases on instead of
	// starting one, e.g. postgres://postgres@127.0.0.1:5432/postgres.
	EnvURL = "TEST_POSTGRES_URL"
	// EnvRequire, set to 1, turns "no PostgreSQL here" from a skip into a
	// failure, so that CI cannot pass without running the tests.
	EnvRequire = "TEST_REQUIRE_POSTGRES"
)

// Timeouts of the steps of running a server. They are generous because a
// loaded 2-core CI machine can take seconds to initdb.
const (
	initTimeout  = 2 * time.Minute
	readyTimeout = time.Minute
	stopTimeout  = time.Minute
	queryTimeout = time.Minute
)

// errUnavailable marks the reasons a server cannot be run here at all, which
// skip a test rather than fail it (unless EnvRequire says otherwise).
var errUnavailable = errors.New("no PostgreSQL server available")

// Server is a private PostgreSQL server for tests: a fresh data directory in
// a temporary directory and a postmaster listening on 127.0.0.1 only (no Unix
// socket), with fsync off, and a superuser "postgres" that needs no
// password.
type Server struct {
	t      testing.TB // nil for the server URL shares
	bindir string
	dir    string // owned by the server's user; holds data/ and postgres.log
	port   int
	runAs  *account // nil: as this process's user

	mu   sync.Mutex
	proc *process // nil while stopped
}

// account is a user to run the server as.
type account struct{ uid, gid uint32 }

// process is a running postmaster.
type process struct {
	cmd  *exec.Cmd
	done chan struct{} // closed when it has exited; err is set then
	err  error
}

// Start runs a private server for the test, removed with its data by
// t.Cleanup. Stop and Start take it down and bring it back; call them from
// the test's goroutine. Tests get a database on it with CreateDatabase.
// It needs the PostgreSQL binaries even when EnvURL is set: a test that
// stops a server cannot share one.
func Start(t testing.TB) *Server {
	t.Helper()
	s, err := newServer()
	if err != nil {
		fail(t, err)
	}
	s.t = t
	t.Cleanup(func() {
		if err := s.destroy(); err != nil {
			t.Errorf("pgtest: %v", err)
		}
	})
	return s
}

// Stop shuts the server down (a fast shutdown: sessions are ended, nothing
// committed is lost) and waits until it has exited. Stopping a stopped
// server does nothing.
func (s *Server) Stop() {
	s.t.Helper()
	if err := s.stop(); err != nil {
		s.t.Fatalf("pgtest: %v", err)
	}
}

// Start starts a stopped server again, on the same port and data, and
// returns once it accepts connections.
func (s *Server) Start() {
	s.t.Helper()
	if err := s.start(); err != nil {
		s.t.Fatalf("pgtest: %v", err)
	}
}

// Port is the TCP port the server listens on, which stays the same across
// Stop and Start.
func (s *Server) Port() int { return s.port }

// URL is the address of database on the server, as user postgres.
func (s *Server) URL(database string) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.User("postgres"),
		Host:     net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)),
		Path:     "/" + database,
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

// CreateDatabase creates a fresh, empty database on the server for t, and
// returns its URL. t.Cleanup drops it.
func (s *Server) CreateDatabase(t testing.TB) string {
	t.Helper()
	return createDatabase(t, s.URL("postgres"), s)
}

// shared is the server URL starts when no EnvURL is set, one per test
// binary, stopped by Main.
var shared struct {
	once sync.Once
	mu   sync.Mutex
	srv  *Server
	err  error
}

// mainRunning is set by Main: only then does something stop the shared
// server.
var mainRunning atomic.Bool

// URL returns the URL of a fresh, empty database for t, dropped by
// t.Cleanup: on the server EnvURL names, or else on a private server shared
// by the test binary, which the package's TestMain must run through Main.
func URL(t testing.TB) string {
	t.Helper()
	if admin := os.Getenv(EnvURL); admin != "" {
		return createDatabase(t, admin, nil)
	}
	if !mainRunning.Load() {
		t.Fatalf("pgtest: URL starts a server shared by the test binary, which only pgtest.Main stops: "+
			"add `func TestMain(m *testing.M) { pgtest.Main(m) }` to the package's tests, or set %s", EnvURL)
	}
	shared.once.Do(func() {
		srv, err := newServer()
		shared.mu.Lock()
		shared.srv, shared.err = srv, err
		shared.mu.Unlock()
	})
	shared.mu.Lock()
	srv, err := shared.srv, shared.err
	shared.mu.Unlock()
	if err != nil {
		fail(t, err)
	}
	return createDatabase(t, srv.URL("postgres"), srv)
}

// Main runs the tests of a package that uses URL, then stops the server they
// shared, and exits with their status. Call it from TestMain.
func Main(m *testing.M) {
	mainRunning.Store(true)
	code := m.Run()
	shared.mu.Lock()
	srv := shared.srv
	shared.mu.Unlock()
	if srv != nil {
		if err := srv.destroy(); err != nil {
			fmt.Fprintf(os.Stderr, "pgtest: %v\n", err)
			if code == 0 {
				code = 1
			}
		}
	}
	os.Exit(code)
}

// fail ends a test that cannot have its server: a skip when there is no
// PostgreSQL here, unless EnvRequire demands one, and a failure otherwise.
func fail(t testing.TB, err error) {
	t.Helper()
	if errors.Is(err, errUnavailable) && os.Getenv(EnvRequire) != "1" {
		t.Skipf("pgtest: %v (set %s to use a running server; %s=1 makes this a failure)", err, EnvURL, EnvRequire)
	}
	t.Fatalf("pgtest: %v", err)
}

// newServer creates a data directory and starts a server on it.
func newServer() (*Server, error) {
	bindir, err := findBindir()
	if err != nil {
		return nil, err
	}
	runAs, err := serverAccount()
	if err != nil {
		return nil, err
	}
	removeStale()
	// Not t.TempDir: as root that is a directory only root may enter.
	dir, err := os.MkdirTemp("", dirPrefix)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, ownerFile), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	s := &Server{bindir: bindir, dir: dir, runAs: runAs}
	if err := s.init(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if s.port, err = freePort(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if err := s.start(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return s, nil
}

// A server's directory is os.TempDir()/pgtest-*, and holds the pid of the
// test binary that made it in a file named owner.
const (
	dirPrefix = "pgtest-"
	ownerFile = "owner"
)

// removeStale removes the directories of servers whose test binary is gone:
// one that was killed took its server down (see sysProcAttr) but could not
// remove the data.
func removeStale() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), dirPrefix+"*"))
	for _, dir := range dirs {
		b, err := os.ReadFile(filepath.Join(dir, ownerFile))
		if err != nil {
			continue // not ours, or still being created
		}
		if pid, err := strconv.Atoi(string(b)); err == nil && pid != os.Getpid() && !processAlive(pid) {
			os.RemoveAll(dir)
		}
	}
}

// init runs initdb into dir/data.
func (s *Server) init() error {
	if s.runAs != nil {
		// MkdirTemp made dir 0700 for us; the server's user needs it.
		if err := os.Chown(s.dir, int(s.runAs.uid), int(s.runAs.gid)); err != nil {
			return fmt.Errorf("give %s to the postgres user: %w", s.dir, err)
		}
	}
	var out bytes.Buffer
	cmd := exec.Command(filepath.Join(s.bindir, "initdb"),
		"--pgdata", filepath.Join(s.dir, "data"),
		"--username", "postgres",
		"--auth", "trust",
		"--encoding", "UTF8",
		"--locale", "C",
		"--no-sync")
	cmd.Dir = s.dir
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = sysProcAttr(s.runAs, syscall.SIGKILL)
	if err := startProcess(cmd); err != nil {
		return fmt.Errorf("initdb: %w", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("initdb: %w\n%s", err, out.Bytes())
		}
		return nil
	case <-time.After(initTimeout):
		_ = cmd.Process.Kill()
		<-done
		return fmt.Errorf("initdb took more than %s\n%s", initTimeout, out.Bytes())
	}
}

// start starts the postmaster and waits until it accepts connections.
func (s *Server) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil {
		return errors.New("start: the server is running")
	}
	logPath := filepath.Join(s.dir, "postgres.log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("start: %w", err)
	}
	defer logFile.Close() // the server has its own copy
	cmd := exec.Command(filepath.Join(s.bindir, "postgres"),
		"-D", filepath.Join(s.dir, "data"),
		"-p", strconv.Itoa(s.port),
		"-c", "listen_addresses=127.0.0.1",
		"-c", "unix_socket_directories=",
		// A test server need not survive a crash of the machine.
		"-c", "fsync=off",
		"-c", "full_page_writes=off",
		// Parallel subtests each open a pool.
		"-c", "max_connections=300")
	cmd.Dir = s.dir
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// SIGQUIT is an immediate shutdown, which, unlike SIGKILL, lets the
	// postmaster end its backends and remove its shared memory.
	cmd.SysProcAttr = sysProcAttr(s.runAs, syscall.SIGQUIT)
	if err := startProcess(cmd); err != nil {
		return fmt.Errorf("start postgres: %w", err)
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	if err := waitReady(p, s.URL("postgres")); err != nil {
		_ = cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("start postgres on port %d: %w\n%s", s.port, err, logTail(logPath))
	}
	s.proc = p
	return nil
}

// waitReady polls the server until it accepts a session.
func waitReady(p *process, url string) error {
	deadline := time.Now().Add(readyTimeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		conn, err := pgx.Connect(ctx, url)
		cancel()
		if err == nil {
			return conn.Close(context.Background())
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not accepting connections after %s: %w", readyTimeout, err)
		}
		select {
		case <-p.done:
			return fmt.Errorf("exited: %v", p.err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// stop makes a fast shutdown and waits for the server to exit, killing it
// when that takes too long.
func (s *Server) stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.proc
	if p == nil {
		return nil
	}
	s.proc = nil
	if err := p.cmd.Process.Signal(syscall.SIGINT); err != nil {
		select {
		case <-p.done: // already gone
			return nil
		default:
			return fmt.Errorf("stop postgres: %w", err)
		}
	}
	select {
	case <-p.done:
		return nil
	case <-time.After(stopTimeout):
		_ = p.cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("stop postgres: no exit %s after a fast shutdown; killed", stopTimeout)
	}
}

// destroy stops the server and removes its directory.
func (s *Server) destroy() error {
	err := s.stop()
	if rmErr := os.RemoveAll(s.dir); rmErr != nil {
		err = errors.Join(err, rmErr)
	}
	return err
}

func (s *Server) running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.proc != nil
}

// createDatabase creates a uniquely named database through the server admin
// points to, and returns its URL. srv is the private server it is on, if
// any: once that is stopped for good, its directory goes and the database
// with it.
func createDatabase(t testing.TB, admin string, srv *Server) string {
	t.Helper()
	u, err := url.Parse(admin)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		t.Fatalf("pgtest: %s must be a postgres:// URL", EnvURL)
	}
	name := databaseName(t.Name())
	ident := pgx.Identifier{name}.Sanitize()
	if err := adminExec(admin, "CREATE DATABASE "+ident); err != nil {
		t.Fatalf("pgtest: create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		// FORCE ends the sessions a test left open (PostgreSQL 13+).
		err := adminExec(admin, "DROP DATABASE IF EXISTS "+ident+" WITH (FORCE)")
		if err != nil && (srv == nil || srv.running()) {
			t.Errorf("pgtest: drop database %s: %v", name, err)
		}
	})
	u.Path = "/" + name
	return u.String()
}

// adminExec runs one statement in a session of its own: CREATE and DROP
// DATABASE cannot run in a transaction.
func adminExec(admin, sql string) error {
	ctx, cancel := context.WithTimeout(context.Background(), queryTimeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, sql)
	return err
}

// databaseName makes a database name from a test name, unique by a random
// suffix and within PostgreSQL's 63 bytes.
func databaseName(test string) string {
	var b strings.Builder
	b.WriteString("pgtest_")
	for _, r := range strings.ToLower(test) {
		if b.Len() >= 40 {
			break
		}
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	var suffix [6]byte
	_, _ = rand.Read(suffix[:])
	b.WriteByte('_')
	b.WriteString(hex.EncodeToString(suffix[:]))
	return b.String()
}

var bindir struct {
	once sync.Once
	dir  string
	err  error
}

// findBindir returns the directory holding initdb and postgres: the one
// pg_config names, else the newest /usr/lib/postgresql/*/bin (Debian's
// packages, which put neither on PATH), else initdb's on PATH.
func findBindir() (string, error) {
	bindir.once.Do(func() {
		var dirs []string
		if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
			dirs = append(dirs, strings.TrimSpace(string(out)))
		}
		debian, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
		sort.Slice(debian, func(i, j int) bool { return majorOf(debian[i]) > majorOf(debian[j]) })
		dirs = append(dirs, debian...)
		if p, err := exec.LookPath("initdb"); err == nil {
			dirs = append(dirs, filepath.Dir(p))
		}
		for _, d := range dirs {
			if isExecutable(filepath.Join(d, "initdb")) && isExecutable(filepath.Join(d, "postgres")) {
				bindir.dir = d
				return
			}
		}
		bindir.err = fmt.Errorf("%w: no initdb and postgres found through pg_config --bindir, "+
			"in /usr/lib/postgresql/*/bin or on PATH", errUnavailable)
	})
	return bindir.dir, bindir.err
}

// majorOf reads the version out of /usr/lib/postgresql/<version>/bin.
func majorOf(dir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(dir)))
	return v
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}

// serverAccount returns who runs the server: nil for this process's user,
// or, as root (which PostgreSQL refuses), the postgres user.
func serverAccount() (*account, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	if !canSwitchUser {
		return nil, fmt.Errorf("%w: running as root, and pgtest can only run servers as another user on Linux", errUnavailable)
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("%w: running as root, which PostgreSQL refuses, and there is no postgres user to run it as: %v", errUnavailable, err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err1 != nil || err2 != nil {
		return nil, fmt.Errorf("user postgres has uid %q and gid %q", u.Uid, u.Gid)
	}
	return &account{uid: uint32(uid), gid: uint32(gid)}, nil
}

// freePort returns a TCP port on 127.0.0.1 that nothing listened on a
// moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// logTail returns the end of the server log, to explain a failed start.
func logTail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	const keep = 4000
	if len(b) > keep {
		b = b[len(b)-keep:]
	}
	return "postgres.log:\n" + string(b)
}
