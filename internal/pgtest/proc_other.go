//go:build !linux

package pgtest

import (
	"os/exec"
	"syscall"
)

// canSwitchUser is false: only Linux gets the code to run a server as
// another user.
const canSwitchUser = false

// sysProcAttr has nothing to set outside Linux, which alone has a
// parent-death signal: there Main and t.Cleanup stop servers, but a killed
// test binary leaves them running.
func sysProcAttr(*account, syscall.Signal) *syscall.SysProcAttr { return nil }

func startProcess(cmd *exec.Cmd) error { return cmd.Start() }

// processAlive says yes: without a portable way to ask, a directory is
// better left behind than removed under a running test.
func processAlive(int) bool { return true }
