route "/sse" {
  source "nats" { subject = "events" }
}
metrics {
  listen = ":9090"
}
