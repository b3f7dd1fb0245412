// Package sources turns what backends send into events, and is the plugin
// API for the kinds of source a config can name.
//
// A source block names a kind ("nats", "webhook", "poll", "stream") and
// holds that kind's settings plus the per-message mapping (event, id,
// data), kept as HCL expressions and evaluated for every message with a
// msg object in scope. Stream-level values (path parameters, claims) are
// evaluated once, when a stream opens. This package never imports proxy:
// the proxy drives sources, never the other way round.
//
// # Adding a kind
//
// A kind registers a Factory under its name (Register, from an init
// function); the config decoder calls it for each block of that kind with
// the block, the config's functions and what the block knows of its
// route (RouteInfo). The Spec it returns says which NATS subject a stream
// reads and how a message there becomes an event: Mapping gives every
// kind the same event, id and data expressions, and the sse.Event it
// returns is valid for the wire, or refused with the reason. What else
// the Spec implements decides how it runs:
//
//   - Spec alone: a backend publishes to NATS itself (nats).
//   - Ingress: messages are pushed to ssegate over HTTP; its Handler
//     publishes them with the route's Publisher (webhook).
//   - Feeder: ssegate fetches them. Feed runs with a FeedEnv, which holds
//     everything it needs at once (publisher, HTTP client, lease, log,
//     status), typically a Reader driven by Run, which owns backoff and
//     retries (poll, stream).
//
// EncodeEvent and DecodeEvent carry an event through NATS, from the
// replica that received or fetched it to those that deliver it. Each
// kind's file asserts at compile time the interfaces it implements.
package sources
