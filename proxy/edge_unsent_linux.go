package proxy

import (
	"net"

	"golang.org/x/sys/unix"
)

// limitUnsent bounds what conn (a TCP connection, maybe under TLS) holds
// that TCP has not sent yet to about limit bytes; other connections are
// left as they are. Without it, the kernel takes megabytes for a client
// that reads slowly before a write blocks: the client is found out late
// or never, and a route's slow_consumer policy (drop the oldest, keep the
// latest of each key) would act on a queue that never fills while the
// client reads minutes-old events.
func limitUnsent(conn net.Conn, limit int) {
	if nc, ok := conn.(interface{ NetConn() net.Conn }); ok {
		conn = nc.NetConn()
	}
	tc, ok := conn.(*net.TCPConn)
	if !ok {
		return
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return
	}
	_ = rc.Control(func(fd uintptr) {
		_ = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_NOTSENT_LOWAT, limit)
	})
}
