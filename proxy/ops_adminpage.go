package proxy

import (
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/ssegate/ssegate/proxy/config"
	"github.com/ssegate/ssegate/sse"
	"github.com/ssegate/ssegate/sse/sseparse"
)

//go:embed adminpage/index.html
var adminPage []byte

// adminPageCSP lets the page run its own inline script and style, by
// hash, and nothing else; no site may frame it.
var adminPageCSP = func() string {
	hash := func(tag string) string {
		_, rest, _ := strings.Cut(string(adminPage), "<"+tag+">")
		body, _, _ := strings.Cut(rest, "</"+tag+">")
		sum := sha256.Sum256([]byte(body))
		return "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
	}
	return "default-src 'self'; script-src " + hash("script") + "; style-src " + hash("style") + "; frame-ancestors 'none'"
}()

// RouteInfo is a route as the admin page lists it.
type RouteInfo struct {
	Path    string   `json:"path"`
	Params  []string `json:"params"`
	Auth    []string `json:"auth"`
	Sources []string `json:"sources"`
	Streams int      `json:"streams"`
	Clients int      `json:"clients"`
}

// RouteInfos lists the routes with what is open on them now, as the admin
// page's /api/routes does.
func (s *Server) RouteInfos() []RouteInfo {
	cfg := s.config()
	open := s.openCounts(cfg)
	out := make([]RouteInfo, 0, len(cfg.Routes))
	for _, rt := range cfg.Routes {
		c := open[rt.Path]
		out = append(out, RouteInfo{
			Path: rt.Path, Params: nonNil(rt.Params), Auth: nonNil(rt.Auth), Sources: nonNil(rt.SourceKinds),
			Streams: c.streams, Clients: c.clients,
		})
	}
	return out
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// openCount is what is open on a route now.
type openCount struct {
	streams, clients int
	pending          uint64 // the largest JetStream backlog of its streams
}

// openCounts counts the open streams and clients of each route of cfg.
func (s *Server) openCounts(cfg *config.Config) map[string]*openCount {
	counts := make(map[string]*openCount, len(cfg.Routes))
	for _, rt := range cfg.Routes {
		counts[rt.Path] = &openCount{}
	}
	s.mu.Lock()
	streams := make([]*stream, 0, len(s.streams))
	for _, st := range s.streams {
		streams = append(streams, st)
	}
	s.mu.Unlock()
	for _, st := range streams {
		c := counts[st.route.Path]
		if c == nil {
			continue // a removed route's, closing
		}
		c.streams++
		st.mu.Lock()
		c.clients += len(st.clients)
		st.mu.Unlock()
		if st.reader != nil {
			c.pending = st.reader.pending.Load()
		}
	}
	return counts
}

// adminPages serves the page, its route list and its tails.
func (s *Server) adminPages(mux *http.ServeMux) {
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Content-Security-Policy", adminPageCSP)
		_, _ = w.Write(adminPage)
	})
	mux.HandleFunc("GET /api/routes", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, s.RouteInfos())
	})
	mux.HandleFunc("GET /tail/{path...}", s.tail)
}

// tail serves the stream of the public path after /tail as the public
// listener would (limits, resume, write_timeout and shutdown included),
// with each event re-sent as JSON {id, event, data} in an unnamed event:
// EventSource hands a page only the event names it listens for, and a
// tail must show them all. The admin request's credentials are not passed
// on, so a route with auth answers 401.
func (s *Server) tail(w http.ResponseWriter, r *http.Request) {
	pub := r.Clone(r.Context())
	pub.URL.Path, pub.URL.RawPath, pub.RequestURI = "/"+r.PathValue("path"), "", ""
	pub.Header.Del("Authorization")
	pub.Header.Del("Cookie")
	pr, pw := io.Pipe()
	tw := &tailWriter{header: http.Header{}, status: make(chan int, 1), body: pw, rc: http.NewResponseController(w)}
	go func() {
		defer func() {
			// Outside net/http's own recovery: a panic here would end the
			// process.
			if p := recover(); p != nil {
				s.log.Error().Interface("panic", p).Str("path", pub.URL.Path).Msg("tail handler panicked")
				tw.WriteHeader(http.StatusInternalServerError)
				pw.CloseWithError(fmt.Errorf("panic: %v", p))
			}
		}()
		s.ServeHTTP(tw, pub)
		tw.WriteHeader(http.StatusOK) // answered nothing: an empty 200
		pw.Close()
	}()
	code := <-tw.status
	if code != http.StatusOK || tw.header.Get("Content-Type") != "text/event-stream; charset=utf-8" {
		// Refused: the answer goes back as it is.
		for k, v := range tw.header {
			w.Header()[k] = v
		}
		w.WriteHeader(code)
		_, _ = io.Copy(w, pr)
		return
	}
	setStreamHeaders(w)
	w.WriteHeader(http.StatusOK)
	rc := tw.rc
	if err := rc.Flush(); err != nil {
		pr.CloseWithError(err)
		return
	}
	events := sseparse.NewReader(pr, 1<<20)
	for {
		ev, err := events.Next()
		if err != nil {
			pr.CloseWithError(errors.New("tail ended"))
			return
		}
		data, _ := json.Marshal(map[string]string{"id": ev.LastEventID, "event": ev.Type, "data": ev.Data})
		frame, _ := sse.NewEvent("", string(data))
		if ev.LastEventID != "" {
			// Kept, so that the page's EventSource resumes where it was.
			frame, _ = frame.WithID(ev.LastEventID)
		}
		if _, err := w.Write(frame.Encode()); err != nil {
			pr.CloseWithError(err) // the public handler's next write fails
			return
		}
		if err := rc.Flush(); err != nil {
			pr.CloseWithError(err)
			return
		}
	}
}

// tailWriter is the ResponseWriter the public handler writes a tail's
// stream to: its status goes to a channel, its body into a pipe, and its
// write deadlines to the admin connection, whose writes the pipe waits
// for.
type tailWriter struct {
	header http.Header
	status chan int
	once   sync.Once
	body   *io.PipeWriter
	rc     *http.ResponseController
}

// SetWriteDeadline bounds the admin connection's writes, so that the
// route's write_timeout and Shutdown's hurry reach a tail that does not
// read.
func (t *tailWriter) SetWriteDeadline(d time.Time) error { return t.rc.SetWriteDeadline(d) }

func (t *tailWriter) Header() http.Header { return t.header }

func (t *tailWriter) WriteHeader(code int) {
	t.once.Do(func() { t.status <- code })
}

func (t *tailWriter) Write(b []byte) (int, error) {
	t.WriteHeader(http.StatusOK)
	return t.body.Write(b)
}

// Flush lets the public handler flush; the pipe holds nothing back.
func (t *tailWriter) Flush() {}
