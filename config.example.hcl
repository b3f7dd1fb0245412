# ssegate example config: every option, with its default when it has one.
# Runs as is:  go run ./cmd/ssegate -config config.example.hcl
# Check a config without running it:  ssegate validate -config FILE

# Address the SSE edge listens on. env("NAME", "default") reads the
# environment; without a default an unset variable is an error.
listen = env("SSEGATE_LISTEN", "127.0.0.1:8080")

# Limits on open streams; omit for none. Over a limit, an EventSource gets
# 200 with a jittered retry: hint and comes back later; other clients get
# 503 (429 per address) with Retry-After.
# max_connections        = 10000
# max_connections_per_ip = 20
# trusted_proxies        = ["10.0.0.0/8"] # whose X-Forwarded-For is believed

# Streams held, open or lingering after their last client (default: a
# quarter of the memory at 16 KiB each, 1,000 to 1,000,000). Full, the
# streams idle longest are given up; with every one open, new streams are
# told to come back later. One address may make new_streams_per_ip new
# streams a second (bursts of four seconds' worth; 0: no bound).
# max_streams        = 100000
new_streams_per_ip = 50
# A config without any route is refused (an emptied or half-written file
# looks like one, and reloaded would end every stream) unless it says so:
# allow_no_routes = true

# HTTPS with HTTP/2 (browsers allow 6 HTTP/1.1 connections per origin):
# tls {
#   cert_file = "/etc/ssegate/cert.pem"
#   key_file  = "/etc/ssegate/key.pem"
# }
# h2c = true # cleartext HTTP/2, behind a proxy that terminates TLS

# Which web origins may open streams, for routes without their own cors.
# cors {
#   allow_origins     = ["https://app.example.com", "https://*.example.com"]
#   allow_credentials = true # never with "*"
#   max_age           = "10m"
# }

# Health checks for load balancers and orchestrators, metrics and a live
# page, on a listener of their own: GET /healthz (alive), GET /readyz (503
# while NATS is away or the process is shutting down, with a JSON body
# saying why), GET /metrics (Prometheus), GET / (routes, streams, a tail of
# each route's events), POST /revoke (end streams on every replica:
#   curl -d '{"claims": {"sub": "alice"}, "reason": "logged out"}' localhost:9090/revoke
# ). Beyond 127.0.0.1 it needs auth: /reload, /revoke, /tail and
# /debug/pprof are not for the network.
admin {
  listen = "127.0.0.1:9090"
  # auth = "ops" # auth blocks, any of which lets a request in (not the probes)
}
# auth "bearer" "ops" {
#   tokens = [env("SSEGATE_ADMIN_TOKEN")]
# }

# How long SIGINT/SIGTERM may take: streams get a final comment and close
# (browsers reconnect), NATS drains, then the process exits.
shutdown_timeout = "10s"
# Before that, serve on for this long with /readyz saying 503, so a load
# balancer stops sending browsers here first.
# shutdown_delay = "5s"

log {
  level  = "info"    # trace, debug, info, warn, error
  format = "console" # console (for people) or json (for collectors)
}

nats {
  # url        = "nats://n1:4222,nats://n2:4222" # omit: start an embedded server
  # name       = "ssegate"                       # connection name shown by NATS
  # creds_file = "/etc/ssegate/nats.creds"       # NATS credentials (JWT + nkey)
  # Replicas take revocations (POST /revoke on the admin listener: end a
  # user's streams everywhere) on control_subject.revoke; keep it to
  # operators with NATS permissions. No route may read or publish under it.
  # control_subject = "ssegate.control"

  # The embedded server, used when url is omitted.
  embedded {
    # TCP address for other processes to publish to. Omit to accept
    # in-process connections only.
    listen = "127.0.0.1:4222"
    # store_dir = "/var/lib/ssegate/nats" # enables JetStream, stored here
    # server_name = "edge-1"              # unique within a cluster
    # Join the embedded servers of several replicas into one NATS cluster:
    # cluster {
    #   name   = "ssegate"
    #   listen = "0.0.0.0:6222"
    #   routes = ["nats://edge-2:6222", "nats://edge-3:6222"]
    # }
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
  slow_consumer = "disconnect" # or "drop": a client whose queue is full loses its
                               # oldest events instead, named by an ssegate-gap
                               # event in their place, and keeps its stream; or
                               # "latest": of what is queued, only the newest
                               # event of each subject is kept (prices, states)
  # max_clients         = 5000  # streams open on this route at once
  # max_streams         = 10000 # streams of this route held, open or lingering
  # max_stream_duration = "1h"  # then the stream ends with a retry: hint and resumes
  # cors { allow_origins = ["https://app.example.com"] } # this route's own; default: the top-level cors

  source "nats" {
    subject = "events"
  }
}

# A file served as it is, on the same listener: a page whose script opens
# the streams from their own origin needs no cors. Open
# http://localhost:8080/ and publish to stocks.AAPL.
page "/" {
  file = "demo.html"
  # content_type = "text/html; charset=utf-8" # default: by the file's extension
}

# One stream per symbol: /stocks/AAPL reads the subject stocks.AAPL.
# event, id and data are evaluated for every message, with msg in scope:
#   msg.subject, msg.subject_tokens, msg.headers (map), msg.body,
#   msg.body_base64, msg.json (the body decoded, or null when not JSON)
# and path.NAME for each {NAME} of the route.
route "/stocks/{symbol}" {
  retry   = "3s"
  history = 1000 # events kept in memory per stream, for resume
  # Or keep the history in JetStream (needs embedded { store_dir } or a
  # JetStream-enabled NATS): ids become stream sequences, valid across
  # restarts and replicas.
  # history {
  #   store     = "jetstream"
  #   max_msgs  = 100000
  #   max_age   = "24h"
  #   max_bytes = 1073741824
  #   replicas  = 3         # NATS nodes that keep it, on a cluster
  #   # stream  = "STOCKS"  # read an existing stream instead of creating one
  # }

  source "nats" {
    subject = "stocks.${path.symbol}"
    event   = "quote"
    # A JSON body's own id, if it has one; otherwise ssegate assigns one.
    id      = try(tostring(msg.json.id), null)
    data    = try(jsonencode({ symbol = path.symbol, price = msg.json.price }), msg.body)
    # With slow_consumer = "latest", what a slow client keeps the newest
    # queued event of; default: the subject.
    # conflation_key = try(msg.json.symbol, msg.subject)
  }

  # A route may merge several sources into one stream, in arrival order.
  source "nats" {
    subject = "halts.${path.symbol}"
    event   = "halt"
  }
}

# A stream the page composes: /tickers?topic=AAPL&topic=MSFT follows both on
# one connection (a browser allows 6 per origin over HTTP/1.1). Each topic
# is checked like a path value and put in scope as topic.name, so this
# block, not the client, decides which subjects are reachable; a client
# value never adds a wildcard. The same set of topics, in any order, is one
# stream with one history, so one Last-Event-ID resumes them all. Events
# are named after their topic (addEventListener("AAPL", ...)) unless the
# mapping names them.
route "/tickers" {
  topics {
    query   = "topic" # the query parameter, once per topic
    max     = 20      # topics per connection; more is answered 400
    refused = "fail"  # a topic allow refuses: 403 naming it; "drop": left
                      # out, and the stream's first event names it
  }
  history = 1000
  source "nats" {
    subject = "stocks.${topic.name}"
    data    = try(jsonencode({ symbol = topic.name, price = msg.json.price }), msg.body)
  }
  # A poll or an upstream stream can fetch per topic too: once per topic,
  # shared by every stream that follows it.
  # source "poll" {
  #   url      = "https://quotes.internal/v1/${topic.name}"
  #   interval = "5s"
  # }
}

# Webhooks: a sender POSTs to /hooks/deploy; each delivery becomes an event
# for every browser on /deploys (on every replica: it goes through NATS).
#   curl -H 'Authorization: Bearer demo-token' -H 'Content-Type: application/json' \
#        -d '{"service":"web","version":"1.4.2"}' localhost:8080/hooks/deploy
route "/deploys" {
  source "webhook" {
    path          = "/hooks/deploy"
    methods       = ["POST"]             # others get 405
    max_body      = 1048576              # bytes; larger gets 413
    body_timeout  = "10s"                # the whole body within this, else 408
    content_types = ["application/json"] # others get 415; omit to accept any
    dedup_window  = "10m"                # a retried delivery id adds no event
    # subject = "deploys"                # default: derived from the route
    event = "deploy"
    id    = try(msg.headers["Webhook-Id"], null)
    data  = jsonencode({ service = msg.json.service, version = msg.json.version })

    # One verify block: "hmac" (GitHub), "stripe", "standard" (Standard
    # Webhooks), "bearer", or "none". Set the token in the environment.
    verify "bearer" {
      tokens = [env("SSEGATE_DEPLOY_TOKEN", "demo-token")]
    }
    # verify "hmac" {
    #   secret = env("GITHUB_WEBHOOK_SECRET")
    #   header = "X-Hub-Signature-256" # default
    #   prefix = "sha256="             # default
    # }
    # verify "stripe"   { secret = env("STRIPE_WEBHOOK_SECRET") } # tolerance = "5m"
    # verify "standard" { secret = env("WEBHOOK_SECRET") }        # "whsec_..."; tolerance = "5m"
  }
}

# Polling: /weather/paris polls the upstream for paris while someone
# watches, once however many browsers do, and stops after linger.
route "/weather/{city}" {
  linger = "1m"

  source "poll" {
    url      = "${env("WEATHER_URL", "http://127.0.0.1:9000/weather")}?city=${path.city}"
    method   = "GET"
    headers  = { Accept = "application/json" }
    # body   = jsonencode({ city = path.city }) # for a POST
    interval = "30s"     # with 10% jitter
    timeout  = "10s"
    emit     = "changes" # "always": every response, changed or not
    # One event per element of an array, each key once:
    items    = try(msg.json.alerts, [])
    key      = msg.json.id
    # max_keys = 10000
    # max_body = 10485760
    event    = "alert"
    id       = msg.json.id
    data     = jsonencode(msg.json)
  }
}

# An upstream that already streams: each of its events is re-emitted,
# keeping its name and id; on reconnect ssegate resumes with Last-Event-ID.
route "/feeds/{feed}" {
  source "stream" {
    url    = "${env("UPSTREAM_URL", "http://127.0.0.1:9001/events")}/${path.feed}"
    format = "sse" # or "ndjson": one JSON value per line
    # headers      = { Authorization = "Bearer ${env("UPSTREAM_TOKEN")}" }
    # max_event    = 1048576
    # idle_timeout = "5m" # an upstream silent this long is reconnected
  }
}

# Where the events already are: PostgreSQL, Redis, Kafka. They read for
# the whole route (subject picks each message's stream); what they read
# goes through NATS like everything else.
# Uncomment with a database at hand. See docs/postgres.md, docs/redis.md,
# docs/kafka.md.
#
# route "/orders/{id}" {
#   history { store = "jetstream" } # exact resume, and duplicates dropped
#   # An outbox table, every row once, in order, across restarts:
#   source "postgres" {
#     dsn     = env("DATABASE_URL") # postgres://user:password@host:5432/db
#     channel = "outbox"            # NOTIFY'd by a trigger: wakes the query
#     query   = "SELECT txid, id, order_id, payload FROM outbox WHERE (txid, id) > ($1, $2) AND txid < pg_snapshot_xmin(pg_current_snapshot()) ORDER BY txid, id LIMIT 500"
#     cursor  = ["txid", "id"]      # progress, and the event id; see docs/postgres.md
#     # start    = ["0", "0"]
#     # interval = "1m" # the query without a notification
#     subject = "orders.${msg.row.order_id}" # picks /orders/{id}
#     data    = jsonencode(msg.row.payload)
#   }
#   # Or LISTEN alone (what is notified while ssegate reconnects is lost):
#   # channel = "orders" without query: each NOTIFY is an event (map
#   # msg.json, not msg.row; keepalive = "30s": silence before a check).
# }
#
# route "/activity" {
#   # A Redis stream, from the last entry id handed on; group = "ssegate"
#   # shares it among the replicas instead. Or channel/pattern: pub/sub.
#   source "redis" {
#     url    = env("REDIS_URL") # redis://:password@host:6379/0
#     stream = "activity"
#     # start      = "0" # "$": new entries only
#     # count      = 500
#     # group      = "ssegate" # every replica a consumer, XACK once in NATS
#     # consumer   = "replica-1"
#     # claim_idle = "1m"
#     # Or pub/sub instead of stream: channel = "news" or pattern = "news.*",
#     # mapping msg.body/msg.json (not msg.fields); keepalive = "30s".
#     event  = msg.fields.kind
#     data   = msg.fields.text
#   }
# }
#
# route "/payments" {
#   # A Kafka topic, as a consumer group over the replicas; offsets are
#   # committed once NATS has the events.
#   source "kafka" {
#     brokers = ["127.0.0.1:9092"]
#     topic   = "payments"
#     # group          = "ssegate:/payments:payments" # the default
#     # start          = "earliest"
#     # count          = 500
#     # sasl_mechanism = "SCRAM-SHA-512"
#     # sasl_username  = "ssegate"
#     # sasl_password  = env("KAFKA_PASSWORD")
#     # tls            = true
#     # ca_file        = "kafka-ca.pem"
#     event   = lookup(msg.headers, "type", "")
#     data    = msg.body
#   }
# }

# Auth: who may open a stream. Routes name auth blocks (auth = "users").
# Browsers cannot set headers on EventSource: use a cookie, a ticket, or
# (least safe) a token in the query. See docs/auth.md.
auth "jwt" "users" {
  hmac_secret = env("SSEGATE_JWT_SECRET", "change-me-to-32-random-bytes-min")
  # public_key_file = "jwt.pub"                  # or an RSA/ECDSA/Ed25519 key
  # jwks_url        = "https://id.example.com/.well-known/jwks.json"
  # algorithms      = ["HS256"]                  # default: by key type
  # issuer          = "https://id.example.com/"
  # audience        = "ssegate"
  # leeway          = "30s"
  header      = "Authorization" # Bearer token, for non-browser clients
  cookie      = "session"
  query_param = "token"
  # POST /ssegate/tickets/users swaps the credentials above for a
  # single-use ticket: new EventSource("/me/notes?ticket=...").
  ticket {
    ttl = "30s"
    # path = "/ssegate/tickets/users"
  }
}

# auth "forward" "gateway" {
#   url             = "http://auth.internal/check" # 2xx allows, 401/403 are passed on
#   forward_headers = ["Authorization", "Cookie"]
#   copy_headers    = ["X-User-Id"]                # auth.claims.x_user_id
#   cache_ttl       = "30s"
#   timeout         = "5s"
#   ticket { ttl = "30s" }                       # as for jwt
# }

# auth "bearer" "services" {
#   tokens = [env("SERVICE_TOKEN")]
# }

# Every user gets a stream of their own: the subject reads the claims.
route "/me/notes" {
  auth = "users" # or ["users", "services"]: any of them
  # allow = contains(try(auth.claims.roles, []), "reader") # false: 403
  source "nats" {
    subject = "user.${auth.claims.sub}.notes"
  }
}

# A room whose members see each other come and go. presence makes who is
# on each stream known: POST /presence on the admin listener asks every
# replica (curl -d '{"route": "/rooms/{room}", "params": {"room": "42"}}'
# localhost:9090/presence), and with subject, each join and leave is
# published there as JSON. The second source reads
# those back, so every member gets them in band, from every replica.
route "/rooms/{room}" {
  auth = "users"
  presence {
    claims  = ["sub", "name"]                # what a member shows of itself (default ["sub"])
    subject = "presence.rooms.${path.room}"  # where joins and leaves go; omit for none
  }
  source "nats" {
    subject = "rooms.${path.room}"
  }
  source "nats" {
    subject = "presence.rooms.${path.room}"
    event   = "presence"
  }
}
