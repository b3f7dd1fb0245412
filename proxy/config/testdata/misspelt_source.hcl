route "/a" {
  sourc "nats" {
    subject = "a"
  }
}
