# A second replica for runs across replicas (-url with two addresses): the
# routes of bench.hcl, on the NATS server the first one embeds.
listen = "127.0.0.1:18082"
new_streams_per_ip = 0
log {
  level = "warn"
}
nats {
  url = "nats://127.0.0.1:14222"
}
route "/u/{n}" {
  source "nats" {
    subject = "u.${path.n}"
  }
}
