route "/sse" {
  linger = "5 minutes"
  source "nats" { subject = "events" }
}
