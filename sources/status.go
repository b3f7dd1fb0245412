package sources

import (
	"sync"
	"time"
)

// State is where a fetching source is in its life.
type State string

// The states of a fetching source.
const (
	StateStarting State = "starting" // not connected yet
	StateStandby  State = "standby"  // another replica holds its lease
	StateRunning  State = "running"  // connected, or its last poll worked
	StateFailing  State = "failing"  // retrying with backoff
	StateStopped  State = "stopped"  // its upstream told it to stop, or it cannot start
)

// Status is how a fetching source is doing, for health checks and
// metrics. It is safe for concurrent use; a nil *Status ignores reports.
type Status struct {
	onFail func()

	mu    sync.Mutex
	state State
	err   string
	since time.Time
}

// NewStatus returns a Status in StateStarting; onFail, if not nil, is
// called at every failure reported.
func NewStatus(onFail func()) *Status {
	return &Status{onFail: onFail, state: StateStarting, since: time.Now()}
}

func (s *Status) set(st State, err error) {
	if s == nil {
		return
	}
	if st == StateFailing && s.onFail != nil {
		s.onFail()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if st != s.state {
		s.state, s.since = st, time.Now()
	}
	// The error of a failing or stopped source; none otherwise.
	s.err = ""
	if err != nil {
		s.err = err.Error()
	}
}

// Get returns the state, since when it holds, and the last error while
// failing or stopped.
func (s *Status) Get() (st State, since time.Time, lastErr string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state, s.since, s.err
}
