package main

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// slowLink makes a socket, before it connects, look like a client's on
// a slow link: a receive window of a few kilobytes and the MSS of an
// Ethernet path. Loopback's 64 KiB MSS with a window that small would
// stall on TCP's silly-window avoidance instead of flowing slowly.
func slowLink(_, _ string, rc syscall.RawConn) error {
	var err error
	cerr := rc.Control(func(fd uintptr) {
		if err = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_MAXSEG, 1400); err == nil {
			err = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, 8<<10)
		}
	})
	if cerr != nil {
		return cerr
	}
	return err
}
