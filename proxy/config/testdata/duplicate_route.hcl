route "/sse" {
  source "nats" { subject = "a" }
}

route "/sse" {
  source "nats" { subject = "b" }
}
