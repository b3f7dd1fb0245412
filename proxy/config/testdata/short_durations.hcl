shutdown_timeout = "0s"

route "/sse" {
  keepalive     = "10ms"
  retry         = "500us"
  write_timeout = "0s"
  source "nats" { subject = "events" }
}
