package faulttest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/switchyard-io/switchyard/pkg/config"
)

// binDir holds the binaries TestMain builds once per test binary.
var binDir string

// Binary names, as `go build -o DIR/` names them.
const (
	binNATS     = "nats-server"
	binWorker   = "worker"
	binRecorder = "recorder"
)

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

// runMain builds the services and nats-server once, with one `go build`
// so the build cache makes a rebuild of unchanged code cost only the link,
// then runs the tests.
func runMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "faulttest-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "faulttest:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	root, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		fmt.Fprintln(os.Stderr, "faulttest: go env GOMOD:", err)
		return 1
	}
	cmd := exec.Command("go", "build", "-o", dir+string(filepath.Separator),
		"./services/worker", "./services/recorder", "github.com/nats-io/nats-server/v2")
	cmd.Dir = filepath.Dir(strings.TrimSpace(string(root)))
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "faulttest: %s: %v\n%s", strings.Join(cmd.Args, " "), err, out)
		return 1
	}
	binDir = dir
	return m.Run()
}

// proc is one child process; its stdout and stderr go to one log file.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{} // closed once the process has exited
}

// startProc starts bin with args in its own process group, with SIGKILL
// when the test binary dies, and kills it at the end of the test if it is
// still running.
func startProc(t *testing.T, logDir, name, bin string, args ...string) *proc {
	t.Helper()
	logPath := filepath.Join(logDir, name+".log")
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close() // the child holds its own descriptor
	cmd := exec.Command(filepath.Join(binDir, bin), args...)
	cmd.Env = childEnv()
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(p.kill)
	return p
}

// childEnv is the environment without SWITCHYARD_ variables, which the
// services would read as configuration.
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, config.EnvPrefix) {
			env = append(env, kv)
		}
	}
	return env
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// kill sends SIGKILL to the process group and waits for the exit.
func (p *proc) kill() {
	if !p.exited() {
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
}

// stop sends SIGTERM and waits up to grace, then kills. It reports whether
// the process stopped by itself.
func (p *proc) stop(grace time.Duration) bool {
	if p.exited() {
		return true
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return true
	case <-time.After(grace):
		p.kill()
		return false
	}
}

// tail returns the last n lines of the process's log.
func (p *proc) tail(n int) string {
	b, err := os.ReadFile(p.log)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "    " + strings.Join(lines, "\n    ")
}
