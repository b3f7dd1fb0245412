package proxy

import (
	"context"
	"sync"

	"github.com/ssegate/ssegate/proxy/config"
)

// feedRuns are the fetching sources that run per stream: one run per
// route, source and subject, shared by the streams that read that
// subject. The streams of overlapping topic sets, or of one path on a
// route with auth (whose streams differ by claims), would otherwise each
// fetch the same upstream and publish each of its events once per stream.
// A run is cancelled when its last stream lets it go; a run of the same
// key started meanwhile waits for it to return, so that two never
// publish at once (it may be saving its progress and letting its lease
// go).
type feedRuns struct {
	mu       sync.Mutex
	running  map[feedKey]*feedRun
	stopping map[feedKey]*feedRun // the newest cancelled run of each key, until it returns
}

// feedKey names a run: what it fetches follows from its subject, which
// reads every path parameter and topic its source reads.
type feedKey struct {
	rt      *config.Route
	source  int
	subject string
}

// feedRun is one run of a source, and how many streams hold it.
type feedRun struct {
	key  feedKey
	refs int
	stop context.CancelFunc
	done chan struct{} // closed once it has returned
}

// streamFeeds are the runs a stream holds, guarded by its feedRuns' mu.
type streamFeeds struct {
	runs    *feedRuns
	held    []*feedRun
	stopped []*feedRun // let go by this stream last: halt waits for them
}

// hold has f hold the run of key, starting it with run if none is
// running.
func (r *feedRuns) hold(f *streamFeeds, key feedKey, run func(context.Context)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f.runs = r
	if fr := r.running[key]; fr != nil {
		fr.refs++
		f.held = append(f.held, fr)
		return
	}
	if r.running == nil {
		r.running, r.stopping = map[feedKey]*feedRun{}, map[feedKey]*feedRun{}
	}
	ctx, cancel := context.WithCancel(context.Background())
	fr := &feedRun{key: key, refs: 1, stop: cancel, done: make(chan struct{})}
	r.running[key] = fr
	f.held = append(f.held, fr)
	prev := r.stopping[key]
	go func() {
		defer r.returned(fr)
		if prev != nil {
			// prev is cancelled: this waits for no longer than it
			// takes to save its progress. Waited for even if fr is
			// cancelled meanwhile, since a run after fr waits only
			// for fr.
			<-prev.done
		}
		if ctx.Err() == nil {
			run(ctx)
		}
	}()
}

// returned lists fr as returned.
func (r *feedRuns) returned(fr *feedRun) {
	r.mu.Lock()
	if r.stopping[fr.key] == fr {
		delete(r.stopping, fr.key)
	}
	r.mu.Unlock()
	close(fr.done)
}

// cancel lets go of the runs f holds, without waiting: those no other
// stream holds are told to stop. A caller stopping several streams
// cancels them all first, since each run may take a moment to return.
func (f *streamFeeds) cancel() {
	r := f.runs
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, fr := range f.held {
		if fr.refs--; fr.refs > 0 {
			continue
		}
		delete(r.running, fr.key)
		r.stopping[fr.key] = fr
		fr.stop()
		f.stopped = append(f.stopped, fr)
	}
	f.held = nil
}

// halt lets go of the runs f holds, and waits for those it stopped.
func (f *streamFeeds) halt() {
	f.cancel()
	if f.runs == nil {
		return
	}
	f.runs.mu.Lock()
	stopped := f.stopped
	f.runs.mu.Unlock()
	for _, fr := range stopped {
		<-fr.done
	}
}
