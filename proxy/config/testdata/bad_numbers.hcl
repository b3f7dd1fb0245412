route "/sse" {
  history = -1
  buffer  = 0
  source "nats" { subject = "events" }
}
