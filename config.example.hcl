# ssegate example config: every option, with its default when it has one.
# Runs as is:  go run ./cmd/ssegate -config config.example.hcl
# Check a config without running it:  ssegate validate -config FILE

# Address the SSE edge listens on. env("NAME", "default") reads the
# environment; without a default an unset variable is an error.
listen = env("SSEGATE_LISTEN", "127.0.0.1:8080")

# How long SIGINT/SIGTERM may take: streams get a final comment and close
# (browsers reconnect), NATS drains, then the process exits.
shutdown_timeout = "10s"

log {
  level  = "info"    # trace, debug, info, warn, error
  format = "console" # console (for people) or json (for collectors)
}

nats {
  # url        = "nats://n1:4222,nats://n2:4222" # omit: start an embedded server
  # name       = "ssegate"                       # connection name shown by NATS
  # creds_file = "/etc/ssegate/nats.creds"       # NATS credentials (JWT + nkey)

  # The embedded server, used when url is omitted.
  embedded {
    # TCP address for other processes to publish to. Omit to accept
    # in-process connections only.
    listen = "127.0.0.1:4222"
    # store_dir = "/var/lib/ssegate/nats" # enables JetStream, stored here
  }
}

# The Node "sse" library's default path. Every message published to the
# subject "events" becomes one SSE event; its body is the data (base64 if
# it is not UTF-8 text), and ssegate assigns the ids.
route "/sse" {
  keepalive = "15s" # comment line after this much silence (>= 1s); "0s": none
  retry     = "3s"  # retry: hint sent at the start of each stream; default none
  history   = 100   # events kept for Last-Event-ID resume; 0: none
  linger    = "5m"  # streams with parameters outlive their last client this long
  buffer    = 256   # events queued per client before a slow client is dropped
  write_timeout = "10s" # a write blocked this long drops the client

  source "nats" {
    subject = "events"
  }
}

# One stream per symbol: /stocks/AAPL reads the subject stocks.AAPL.
# event, id and data are evaluated for every message, with msg in scope:
#   msg.subject, msg.subject_tokens, msg.headers (map), msg.body,
#   msg.body_base64, msg.json (the body decoded, or null when not JSON)
# and path.NAME for each {NAME} of the route.
route "/stocks/{symbol}" {
  retry   = "3s"
  history = 1000

  source "nats" {
    subject = "stocks.${path.symbol}"
    event   = "quote"
    # A JSON body's own id, if it has one; otherwise ssegate assigns one.
    id      = try(tostring(msg.json.id), null)
    data    = try(jsonencode({ symbol = path.symbol, price = msg.json.price }), msg.body)
  }

  # A route may merge several sources into one stream, in arrival order.
  source "nats" {
    subject = "halts.${path.symbol}"
    event   = "halt"
  }
}
