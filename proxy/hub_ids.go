package proxy

import (
	"math/rand/v2"
	"strconv"
)

// newEpoch returns a random prefix for the ids a stream assigns, so that an
// id from another life of the stream (before a restart, on another
// replica, before the stream was freed) is never mistaken for one of now:
// resuming from it gets a reset, not the wrong events. 64 random bits make
// a collision between two lives of one stream practically impossible.
func newEpoch() string {
	return strconv.FormatUint(rand.Uint64(), 36)
}

// assignID returns the short ASCII id "<epoch>-<seq>".
func assignID(epoch string, seq uint64) string {
	b := make([]byte, 0, len(epoch)+1+20)
	b = append(b, epoch...)
	b = append(b, '-')
	return string(strconv.AppendUint(b, seq, 10))
}
