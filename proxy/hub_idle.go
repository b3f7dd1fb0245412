package proxy

import "sync"

// idleStreams lists the streams without a client, lingering, oldest
// first: when max_streams is reached they are given up in that order,
// never an open one.
//
// Its mu comes after a stream's in the lock order (server.go), and
// nothing is locked while it is held.
type idleStreams struct {
	mu         sync.Mutex
	head, tail *stream // head: idle the longest
}

// push lists st as the newest idle stream. Called with st.mu held.
func (l *idleStreams) push(st *stream) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if st.idleListed {
		return
	}
	st.idlePrev, st.idleNext, st.idleListed = l.tail, nil, true
	if l.tail != nil {
		l.tail.idleNext = st
	} else {
		l.head = st
	}
	l.tail = st
}

// remove takes st off the list, if it is on it. Called with st.mu held.
func (l *idleStreams) remove(st *stream) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !st.idleListed {
		return
	}
	if st.idlePrev != nil {
		st.idlePrev.idleNext = st.idleNext
	} else {
		l.head = st.idleNext
	}
	if st.idleNext != nil {
		st.idleNext.idlePrev = st.idlePrev
	} else {
		l.tail = st.idlePrev
	}
	st.idlePrev, st.idleNext, st.idleListed = nil, nil, false
}

// oldest returns the stream idle the longest that match accepts, or nil.
func (l *idleStreams) oldest(match func(*stream) bool) *stream {
	l.mu.Lock()
	defer l.mu.Unlock()
	for st := l.head; st != nil; st = st.idleNext {
		if match(st) {
			return st
		}
	}
	return nil
}
