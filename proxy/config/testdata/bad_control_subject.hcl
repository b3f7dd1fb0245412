nats {
  control_subject = "ops.*"
}
route "/a" {
  source "nats" { subject = "a" }
}
