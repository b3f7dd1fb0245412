package proxy

import (
	"net/http"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/ssegate/ssegate/proxy/config"
	"github.com/ssegate/ssegate/sources"
)

// Results of a stream request, the result label of
// ssegate_connections_total.
const (
	connAccepted        = "accepted"
	connBadRequest      = "bad_request"
	connUnauthorized    = "unauthorized"
	connForbidden       = "forbidden"
	connAuthUnavailable = "auth_unavailable"
	connLimit           = "limit"
	connUnavailable     = "unavailable"
)

// metrics are a Server's Prometheus metrics, in a registry of its own so
// that several Servers in one process do not collide. Labels are route
// patterns and source positions, never concrete paths or clients, so
// their number is bounded by the config.
type metrics struct {
	reg          *prometheus.Registry
	connections  *prometheus.CounterVec
	received     *prometheus.CounterVec
	rejected     *prometheus.CounterVec
	delivered    *prometheus.CounterVec
	bytes        *prometheus.CounterVec
	replays      *prometheus.CounterVec
	slow         *prometheus.CounterVec
	sourceErrors *prometheus.CounterVec
	webhooks     *prometheus.CounterVec
	polls        *prometheus.CounterVec
	dropped      *prometheus.CounterVec
	revoked      *prometheus.CounterVec
	vecs         []*prometheus.CounterVec // every counter above
}

// routeMetrics are one route's counters, looked up once rather than per
// event.
type routeMetrics struct {
	received                   []prometheus.Counter // by source
	rejected, delivered, bytes prometheus.Counter
	replayed, reset            prometheus.Counter
	queueFull, writeTimeout    prometheus.Counter
	dropped                    prometheus.Counter // events a slow client lost (slow_consumer = "drop")
	revoked                    prometheus.Counter // clients a Revocation ended
}

func newMetrics(s *Server) *metrics {
	var vecs []*prometheus.CounterVec
	counter := func(name, help string, labels ...string) *prometheus.CounterVec {
		v := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "ssegate", Name: name, Help: help}, labels)
		vecs = append(vecs, v)
		return v
	}
	m := &metrics{
		reg:          prometheus.NewRegistry(),
		connections:  counter("connections_total", "Stream requests by outcome: accepted, or why they were turned away.", "route", "result"),
		received:     counter("events_received_total", "Messages read from NATS for a route's streams, by source.", "route", "source"),
		rejected:     counter("events_rejected_total", "Messages dropped because they could not be made into an event.", "route"),
		delivered:    counter("events_delivered_total", "Frames (events, replays, resets) written to clients.", "route"),
		bytes:        counter("bytes_written_total", "Bytes of frames, keepalives and retry hints written to clients.", "route"),
		replays:      counter("replays_total", "Resuming clients: replayed from history, or sent the reset event.", "route", "result"),
		slow:         counter("slow_clients_total", "Clients disconnected for falling behind: queue full, or a write that timed out.", "route", "reason"),
		dropped:      counter("events_dropped_total", "Events a slow client lost on a route with slow_consumer = \"drop\" (it is told with ssegate-gap).", "route"),
		revoked:      counter("clients_revoked_total", "Clients whose stream a revocation ended (or asked to reconnect).", "route"),
		sourceErrors: counter("source_errors_total", "Failures of fetching sources (polls, upstream streams), each retried with backoff.", "route", "source"),
		webhooks:     counter("webhook_responses_total", "Webhook answers by status code.", "route", "code"),
		polls:        counter("poll_requests_total", "Poll requests by outcome: changed, unchanged, not_modified, error.", "route", "source", "outcome"),
	}
	m.vecs = vecs
	for _, v := range m.vecs {
		m.reg.MustRegister(v)
	}
	m.reg.MustRegister(
		&gauges{s: s},
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

// forgetRoutes drops the series of routes old has and cfg no longer does,
// so a reload does not leave removed routes in the metrics forever.
func (m *metrics) forgetRoutes(old, cfg *config.Config) {
	paths := map[string]bool{}
	for _, rt := range cfg.Routes {
		paths[rt.Path] = true
	}
	for _, rt := range old.Routes {
		if paths[rt.Path] {
			continue
		}
		for _, v := range m.vecs {
			v.DeletePartialMatch(prometheus.Labels{"route": rt.Path})
		}
	}
}

// route returns rt's counters.
func (m *metrics) route(rt *config.Route) *routeMetrics {
	r := &routeMetrics{
		rejected:     m.rejected.WithLabelValues(rt.Path),
		delivered:    m.delivered.WithLabelValues(rt.Path),
		bytes:        m.bytes.WithLabelValues(rt.Path),
		replayed:     m.replays.WithLabelValues(rt.Path, "replayed"),
		reset:        m.replays.WithLabelValues(rt.Path, "reset"),
		queueFull:    m.slow.WithLabelValues(rt.Path, "queue_full"),
		writeTimeout: m.slow.WithLabelValues(rt.Path, "write_timeout"),
		dropped:      m.dropped.WithLabelValues(rt.Path),
		revoked:      m.revoked.WithLabelValues(rt.Path),
	}
	for i := range rt.Sources {
		r.received = append(r.received, m.received.WithLabelValues(rt.Path, strconv.Itoa(i)))
	}
	return r
}

// handler serves the metrics in the Prometheus text format.
func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// webhookAnswered counts the answers of rt's webhook.
func (m *metrics) webhookAnswered(rt *config.Route) func(status int) {
	return func(status int) { m.webhooks.WithLabelValues(rt.Path, strconv.Itoa(status)).Inc() }
}

// feedHooks are the counters a fetching source reports to.
func (m *metrics) feedHooks(rt *config.Route, source int, env *sources.FeedEnv) {
	src := strconv.Itoa(source)
	errs := m.sourceErrors.WithLabelValues(rt.Path, src)
	env.Status = sources.NewStatus(errs.Inc)
	env.Polled = func(outcome string) { m.polls.WithLabelValues(rt.Path, src, outcome).Inc() }
}

// gauges reads what is open now when scraped: streams and clients per
// route, JetStream lag, the fetching sources' states and the NATS
// connection.
type gauges struct{ s *Server }

var (
	descStreams = prometheus.NewDesc("ssegate_streams_open", "Streams open (a route with its parameters filled in), lingering ones included.", []string{"route"}, nil)
	descClients = prometheus.NewDesc("ssegate_clients_connected", "Clients connected.", []string{"route"}, nil)
	descPending = prometheus.NewDesc("ssegate_jetstream_pending", "Messages JetStream holds that a route's reader on this replica has not read yet.", []string{"route"}, nil)
	descSources = prometheus.NewDesc("ssegate_sources", "Fetching sources running here, by state (running, failing, standby, starting, stopped).", []string{"route", "source", "state"}, nil)
	descNATS    = prometheus.NewDesc("ssegate_nats_connected", "1 while connected to NATS.", nil, nil)
	descReconn  = prometheus.NewDesc("ssegate_nats_reconnects_total", "Reconnections to NATS.", nil, nil)
)

func (g *gauges) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descStreams, descClients, descPending, descSources, descNATS, descReconn} {
		ch <- d
	}
}

func (g *gauges) Collect(ch chan<- prometheus.Metric) {
	s := g.s
	gen := s.snapshot()
	open := s.openCounts(gen.cfg)
	for _, rt := range gen.cfg.Routes {
		c := open[rt.Path]
		ch <- prometheus.MustNewConstMetric(descStreams, prometheus.GaugeValue, float64(c.streams), rt.Path)
		ch <- prometheus.MustNewConstMetric(descClients, prometheus.GaugeValue, float64(c.clients), rt.Path)
		if rt.JetStream != nil {
			ch <- prometheus.MustNewConstMetric(descPending, prometheus.GaugeValue, float64(c.pending), rt.Path)
		}
	}
	type sourceState struct{ route, source, state string }
	states := map[sourceState]int{}
	for _, r := range s.feedBoard.reports() {
		states[sourceState{r.Route, strconv.Itoa(r.Source), r.State}]++
	}
	for k, n := range states {
		ch <- prometheus.MustNewConstMetric(descSources, prometheus.GaugeValue, float64(n), k.route, k.source, k.state)
	}
	connected := 0.0
	nc := s.conns.Conn()
	if nc.IsConnected() {
		connected = 1
	}
	ch <- prometheus.MustNewConstMetric(descNATS, prometheus.GaugeValue, connected)
	ch <- prometheus.MustNewConstMetric(descReconn, prometheus.CounterValue, float64(nc.Stats().Reconnects))
}
