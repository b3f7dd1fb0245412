// Package sources turns what backends send into normalized events.
//
// A source block in the config names a kind ("nats", ...) and holds that
// kind's settings plus the per-message mapping (event, id, data), kept as HCL
// expressions and evaluated for every message with a msg object in scope.
// Stream-level values (path parameters) are evaluated once, when a stream
// opens. This package never imports proxy: the proxy drives sources, never
// the other way round.
package sources
