route "/a/{x}" {
  source "nats" { subject = "a..${path.x}" }
}
