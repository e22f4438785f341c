//go:build linux

package pgtest

import (
	"os/exec"
	"runtime"
	"sync"
	"syscall"
)

const canSwitchUser = true

// sysProcAttr runs a child as runAs (when set) and has the kernel send it
// sig when its parent dies, so that no server outlives a test binary that
// panics, times out or is killed.
func sysProcAttr(runAs *account, sig syscall.Signal) *syscall.SysProcAttr {
	attr := &syscall.SysProcAttr{Pdeathsig: sig}
	if runAs != nil {
		attr.Credential = &syscall.Credential{Uid: runAs.uid, Gid: runAs.gid}
	}
	return attr
}

// processAlive reports whether a process with the pid exists.
func processAlive(pid int) bool {
	return syscall.Kill(pid, 0) != syscall.ESRCH
}

// spawner starts children from one goroutine locked to its thread for the
// life of the process. The parent-death signal fires when the *thread* that
// started the child ends, and the Go runtime ends a thread whenever a
// goroutine locked to it returns: a child started from an arbitrary
// goroutine could be killed mid-test because some unrelated code locked a
// thread.
var spawner struct {
	once sync.Once
	reqs chan spawnRequest
}

type spawnRequest struct {
	cmd  *exec.Cmd
	done chan error
}

// startProcess starts cmd from the spawner's thread.
func startProcess(cmd *exec.Cmd) error {
	spawner.once.Do(func() {
		spawner.reqs = make(chan spawnRequest)
		go func() {
			runtime.LockOSThread() // never unlocked: the thread must not end
			for r := range spawner.reqs {
				r.done <- r.cmd.Start()
			}
		}()
	})
	done := make(chan error, 1)
	spawner.reqs <- spawnRequest{cmd: cmd, done: done}
	return <-done
}
