//go:build unix

package provider

import (
	"errors"
	"syscall"
)

// alive peeks at an idle connection without blocking: a server that closed
// it shows as end of file, a live one has nothing to read.
func (c *h1Conn) alive() bool {
	sc, ok := c.conn.(syscall.Conn)
	if !ok {
		return true
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	var (
		buf  [1]byte
		rerr error
	)
	if err := rc.Read(func(fd uintptr) bool {
		_, _, rerr = syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		return true
	}); err != nil {
		return false
	}
	// EAGAIN: nothing to read, still open. Anything else is a close (a
	// zero-byte read), an error, or bytes nobody asked for.
	return errors.Is(rerr, syscall.EAGAIN)
}
