# The config the figures in bench/README.md were measured with.
listen = "127.0.0.1:18080"
log {
  level = "warn"
}
nats {
  embedded {
    listen = "127.0.0.1:14222"
  }
}
route "/sse" {
  source "nats" {
    subject = "events"
  }
}
