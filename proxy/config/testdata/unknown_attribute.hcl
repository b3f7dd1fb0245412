listen = "127.0.0.1:8080"
route "/sse" {
  keepalive = "15s"
  keeplive  = "15s"
  source "nats" { subject = "events" }
}
