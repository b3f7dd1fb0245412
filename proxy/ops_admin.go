package proxy

import (
	"encoding/json"
	"net/http"
	"net/http/pprof"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/ssegate/ssegate/sources"
)

// Admin returns the handler of the admin listener: /healthz answers 200
// while the process serves; /readyz answers 200 when this replica can
// deliver events (NATS connected, not shutting down) and 503 otherwise,
// with a JSON body that says why and how each fetching source is doing;
// /metrics serves Prometheus metrics, /debug/pprof/ Go's profiles;
// POST /revoke ends the streams a Revocation selects, on every replica;
// POST /presence says who is on a stream, on every replica. With
// the admin block's auth, every request but the probes must pass one of
// its auth blocks. The probes stay open: an auth service outage must not
// restart or unready every replica at once.
func (s *Server) Admin() http.Handler {
	rest := http.NewServeMux()
	rest.Handle("GET /metrics", s.metrics.handler())
	if s.reloader != nil {
		rest.HandleFunc("POST /reload", func(w http.ResponseWriter, _ *http.Request) {
			if err := s.reloader(); err != nil {
				writeJSON(w, http.StatusUnprocessableEntity, map[string]any{"reloaded": false, "error": err.Error()})
				return
			}
			writeJSON(w, http.StatusOK, map[string]any{"reloaded": true})
		})
	}
	rest.HandleFunc("POST /revoke", s.serveRevoke)
	rest.HandleFunc("POST /presence", s.servePresence)
	s.adminPages(rest)
	// Profiles, for finding where time and memory go in production.
	rest.HandleFunc("GET /debug/pprof/", pprof.Index)
	rest.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
	rest.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	rest.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	rest.HandleFunc("GET /debug/pprof/trace", pprof.Trace)

	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		r := s.readiness()
		code := http.StatusOK
		if !r.Ready {
			code = http.StatusServiceUnavailable
		}
		writeJSON(w, code, r)
	})
	// The admin block is the one the listener started with: it changes
	// only with a restart.
	cfg := s.config()
	if cfg.Admin == nil || len(cfg.Admin.Auth) == 0 {
		mux.Handle("/", rest)
		return mux
	}
	names := cfg.Admin.Auth
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		_, denied := s.tryAuth(s.snapshot(), r, names)
		switch {
		case denied == nil:
			rest.ServeHTTP(w, r)
		case denied.unavailable:
			http.Error(w, "authentication unavailable; retry later", http.StatusServiceUnavailable)
		default:
			denied.write(w)
		}
	})
	return mux
}

// Drain marks the Server not ready (/readyz answers 503) while it goes on
// serving, so load balancers stop sending it clients before Shutdown.
func (s *Server) Drain() {
	s.mu.Lock()
	s.draining = true
	s.mu.Unlock()
}

// Readiness is the body of /readyz.
type Readiness struct {
	Ready bool `json:"ready"`
	// NotReady says what keeps the replica from being ready.
	NotReady []string `json:"not_ready,omitempty"`
	NATS     string   `json:"nats"`
	// Sources are the fetching sources of this replica. A failing source
	// does not make it unready: every replica shares its upstream, and
	// the routes fed by NATS are still served.
	Sources []SourceReport `json:"sources"`
}

// SourceReport is how one fetching source is doing.
type SourceReport struct {
	Route  string   `json:"route"`
	Source int      `json:"source"`
	Params []string `json:"params,omitempty"`
	Topic  string   `json:"topic,omitempty"`
	State  string   `json:"state"`
	Since  string   `json:"since"`
	Error  string   `json:"error,omitempty"`
}

func (s *Server) readiness() Readiness {
	status := s.conns.Conn().Status()
	r := Readiness{NATS: strings.ToLower(status.String()), Sources: s.feedBoard.reports()}
	if status != nats.CONNECTED {
		r.NotReady = append(r.NotReady, "NATS is "+r.NATS)
	}
	s.mu.Lock()
	stopping := s.stopping || s.draining
	s.mu.Unlock()
	if stopping {
		r.NotReady = append(r.NotReady, "shutting down")
	}
	r.Ready = len(r.NotReady) == 0
	return r
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// feedBoard lists the fetching sources running on this replica with
// their status.
type feedBoard struct {
	mu    sync.Mutex
	feeds map[*sources.Status]SourceReport
}

// add registers the source rep names, reporting to st.
func (b *feedBoard) add(rep SourceReport, st *sources.Status) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.feeds == nil {
		b.feeds = map[*sources.Status]SourceReport{}
	}
	b.feeds[st] = rep
}

func (b *feedBoard) remove(st *sources.Status) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.feeds, st)
}

// reports lists the sources by route, source and parameters.
func (b *feedBoard) reports() []SourceReport {
	b.mu.Lock()
	out := make([]SourceReport, 0, len(b.feeds))
	for st, rep := range b.feeds {
		state, since, err := st.Get()
		rep.State, rep.Since, rep.Error = string(state), since.UTC().Format(time.RFC3339), err
		out = append(out, rep)
	}
	b.mu.Unlock()
	slices.SortFunc(out, func(a, b SourceReport) int {
		if c := strings.Compare(a.Route, b.Route); c != 0 {
			return c
		}
		if a.Source != b.Source {
			return a.Source - b.Source
		}
		if c := slices.Compare(a.Params, b.Params); c != 0 {
			return c
		}
		return strings.Compare(a.Topic, b.Topic)
	})
	return out
}
