//go:build !linux

package proxy

import "net"

// limitUnsent does nothing where TCP_NOTSENT_LOWAT is not known: the
// kernel's send buffer stands in front of a slow client's queue.
func limitUnsent(net.Conn, int) {}
