package sources

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"sync"

	"github.com/hashicorp/hcl/v2"
	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/ssegate/ssegate/sse"
)

// Spec is a decoded source block. Whatever the kind, a stream receives its
// events from NATS: the nats kind reads a subject the backend publishes
// to, the others publish what they receive or fetch to a subject of their
// own, so that every replica on one NATS delivers it.
type Spec interface {
	// Subject is the subject a stream reads, given the stream's variables.
	Subject(streamCtx *hcl.EvalContext) (string, error)
	// Event turns a message received on that subject into an event
	// ready for the wire, or says why it cannot be one.
	Event(streamCtx *hcl.EvalContext, m *nats.Msg) (sse.Event, error)
	// DefRange is where the block is declared, for messages about it.
	DefRange() hcl.Range
	// Pattern is a subject pattern that covers the subject of every
	// stream of the route: what a JetStream stream must capture to hold
	// their history. ctx holds the functions.
	Pattern(ctx *hcl.EvalContext) (string, error)
}

// Keyed is a Spec whose messages have a conflation key of their own (a
// nats source's conflation_key = ...): a route with slow_consumer = "latest" keeps,
// for a slow client, the newest queued event of each key. Without one,
// or when it gives "", the key is the message's subject.
type Keyed interface {
	Spec
	Key(streamCtx *hcl.EvalContext, m *nats.Msg) (string, error)
}

// OwnIDs is a Spec whose events have, by default, ids of its kind's
// making (an outbox cursor, a stream entry id, a partition and offset):
// two such sources on one route can give two events the same id, and
// the history keeps only the first.
type OwnIDs interface {
	Spec
	// OwnIDs reports whether the block leaves the ids to its kind (it
	// has no id expression).
	OwnIDs() bool
}

// Positioned is a Spec whose reading has a place of its own: a consumer
// group (kafka, a redis group), a saved position (an outbox's cursor, a
// stream's last id). Two sources of one route reading from the same
// place would each get part of the records, or overwrite each other's
// position.
type Positioned interface {
	Spec
	// ReadPlace names the place, or is "" when the source has none (it
	// keeps nothing: LISTEN, pub/sub); what says what it is, for
	// messages.
	ReadPlace() (key, what string)
}

// Feeder is a Spec whose messages ssegate fetches itself (poll, stream).
type Feeder interface {
	Spec
	// PerStream reports whether the feed depends on the stream's
	// variables: it then runs once per open stream, otherwise once per
	// route.
	PerStream() bool
	// Feed fetches and publishes until ctx ends.
	Feed(ctx context.Context, f FeedEnv)
}

// FeedEnv is what a Feeder needs to run.
type FeedEnv struct {
	Publish   Publisher
	HTTP      *http.Client
	Log       zerolog.Logger
	StreamCtx *hcl.EvalContext // the stream's variables, or the route's
	// Name identifies the feed's block the same way on every replica
	// (its route and place in it); with the subject it names the lease.
	Name string
	// Route is the path of the feed's route. A source whose progress is
	// worth more than a change of config (an outbox's cursor) names its
	// lease with it, not with Name.
	Route string
	// Lease, when set, runs the feed on one replica at a time.
	Lease Lease
	// Status, when set, is kept up to date with the feed's state.
	Status *Status
	// Polled, when set, is told the outcome of each poll: "changed",
	// "unchanged", "not_modified" or "error".
	Polled func(outcome string)
}

// Lease runs a job on one replica at a time; see package proxy/lease.
type Lease interface {
	// Hold runs job whenever this replica holds the lease named key,
	// until ctx ends; job's context ends when the lease is lost. saved is
	// what the previous holder saved with save. waiting, if not nil, is
	// called when another replica holds the lease.
	Hold(ctx context.Context, key string, job func(ctx context.Context, saved []byte, save func(context.Context, []byte) error), waiting func())
}

// Ingress is a Spec whose messages are pushed to ssegate over HTTP
// (webhook): a handler on a path of its own.
type Ingress interface {
	Spec
	// Patterns are the net/http ServeMux patterns the handler serves.
	Patterns() []string
	// Handler answers the requests, publishing what they carry, and tells
	// answered (if not nil) each answer's status.
	Handler(pub Publisher, log zerolog.Logger, answered func(status int)) http.Handler
}

// RouteInfo is what a source block knows of the route that holds it.
type RouteInfo struct {
	Path   string
	Params []string
	Index  int  // the block's position among the route's sources
	Auth   bool // the route authenticates its clients
	Topics bool // clients pick topics (topic.name)
}

// Scope is what the route's stream-level expressions may reference.
func (r RouteInfo) Scope() Scope {
	s := Scope{"path": r.Params}
	if r.Topics {
		s["topic"] = []string{"name"}
	}
	return s
}

// SubjectScope is what a subject a stream subscribes to may reference:
// also the claims of the client, on a route with auth.
func (r RouteInfo) SubjectScope() Scope {
	s := r.Scope()
	if r.Auth {
		s["auth"] = []string{"claims"}
	}
	return s
}

// DefaultSubject is where a source that is not nats publishes, when its
// block names no subject: derived from the route's path, so that replicas
// with the same config agree on it, and from the block's position.
func (r RouteInfo) DefaultSubject() string {
	sum := sha256.Sum256([]byte(r.Path))
	return "ssegate.src." + hex.EncodeToString(sum[:8]) + "." + strconv.Itoa(r.Index)
}

// Factory decodes a block of one kind. ctx holds the config's functions.
type Factory func(block *hcl.Block, ctx *hcl.EvalContext, route RouteInfo) (Spec, hcl.Diagnostics)

var (
	registryMu sync.RWMutex
	registry   = map[string]Factory{}
)

// Register makes a source kind available to configs. It panics on an
// empty or duplicate kind: both are programming errors.
func Register(kind string, f Factory) {
	registryMu.Lock()
	defer registryMu.Unlock()
	if kind == "" {
		panic("sources: Register with an empty kind")
	}
	if _, dup := registry[kind]; dup {
		panic("sources: Register called twice for kind " + kind)
	}
	registry[kind] = f
}

// Kinds lists the registered kinds, sorted.
func Kinds() []string {
	registryMu.RLock()
	defer registryMu.RUnlock()
	kinds := make([]string, 0, len(registry))
	for k := range registry {
		kinds = append(kinds, k)
	}
	slices.Sort(kinds)
	return kinds
}

// Decode decodes a `source "KIND" { ... }` block with its kind's factory.
func Decode(block *hcl.Block, ctx *hcl.EvalContext, route RouteInfo) (Spec, hcl.Diagnostics) {
	kind := block.Labels[0]
	registryMu.RLock()
	f, ok := registry[kind]
	registryMu.RUnlock()
	if !ok {
		return nil, hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Unknown source kind",
			Detail:   fmt.Sprintf("There is no source kind %q; the kinds are: %s.", kind, quotedList(Kinds())),
			Subject:  block.LabelRanges[0].Ptr(),
		}}
	}
	return f(block, ctx, route)
}
