listen = env("SSEGATE_TEST_SURELY_UNSET")
route "/sse" {
  source "nats" { subject = "events" }
}
