package proxy

import (
	"context"
	"sync"

	"github.com/ssegate/ssegate/proxy/config"
	"github.com/ssegate/ssegate/sources"
)

// trackFunc records a fetching source for /readyz and the metrics until
// the returned func is called.
type trackFunc func(rt *config.Route, i int, params []string, env *sources.FeedEnv) (untrack func())

// feedGroup is the fetching sources running for a route as a whole, or
// for one of its streams.
type feedGroup struct {
	stop context.CancelFunc
	wg   sync.WaitGroup
}

// start runs rt's fetching sources that are per stream (or not, as
// perStream says) with env, their logs naming their source; params are
// the stream's path values, for the reports.
func (f *feedGroup) start(rt *config.Route, perStream bool, params []string, env sources.FeedEnv, track trackFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	f.stop = cancel
	for i, src := range rt.Sources {
		fd, ok := src.(sources.Feeder)
		if !ok || fd.PerStream() != perStream {
			continue
		}
		env := env
		env.Log, env.Name = env.Log.With().Int("source", i).Logger(), feedName(rt, i)
		untrack := track(rt, i, params, &env)
		f.wg.Go(func() {
			defer untrack()
			fd.Feed(ctx, env)
		})
	}
}

// cancel tells the sources to stop, without waiting: a caller stopping
// several groups tells them all first, since each may take a moment to
// save its progress and release its lease.
func (f *feedGroup) cancel() {
	if f.stop != nil {
		f.stop()
	}
}

// halt stops the sources and waits for them.
func (f *feedGroup) halt() {
	f.cancel()
	f.wg.Wait()
}
