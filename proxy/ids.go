package proxy

import (
	"strconv"
	"sync/atomic"
	"time"
)

// lastEpoch is the newest epoch handed out in this process.
var lastEpoch atomic.Int64

// newEpoch returns a prefix for the ids a new stream assigns: the time in
// milliseconds, in base 36, never the same twice in one process and moving
// forward across restarts, so an id from an earlier process or an earlier
// life of the stream is never mistaken for one of now.
func newEpoch() string {
	for {
		prev := lastEpoch.Load()
		now := max(time.Now().UnixMilli(), prev+1)
		if lastEpoch.CompareAndSwap(prev, now) {
			return strconv.FormatInt(now, 36)
		}
	}
}

// assignID returns the short ASCII id "<epoch>-<seq>".
func assignID(epoch string, seq uint64) string {
	b := make([]byte, 0, len(epoch)+1+20)
	b = append(b, epoch...)
	b = append(b, '-')
	return string(strconv.AppendUint(b, seq, 10))
}
