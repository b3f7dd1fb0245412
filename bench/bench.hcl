# The config the figures in bench/README.md were measured with.
listen = "127.0.0.1:18080"
h2c    = true # for -h2c runs; HTTP/1.1 is served as ever
new_streams_per_ip = 0 # the load comes from one address
log {
  level = "warn"
}
nats {
  embedded {
    listen = "127.0.0.1:14222"
  }
}
route "/sse" {
  source "nats" {
    subject = "events"
  }
}

# For -distinct runs: a stream per client, as a per-user route makes.
route "/u/{n}" {
  source "nats" {
    subject = "u.${path.n}"
  }
}

# For -topics runs: each client picks a set of topics of its own.
route "/t" {
  topics {
    max = 20
  }
  source "nats" {
    subject = "t.${topic.name}"
  }
}

# For -slow runs: a keyed feed (-keys publishes to k.0, k.1, ...) under
# each slow_consumer policy.
route "/latest" {
  slow_consumer = "latest"
  source "nats" {
    subject = "k.*"
  }
}
route "/drop" {
  slow_consumer = "drop"
  source "nats" {
    subject = "k.*"
  }
}
route "/disconnect" {
  source "nats" {
    subject = "k.*"
  }
}

# For -streams and -churn runs: clients spread over rooms whose joins
# and leaves are published (presence); /u/{n} above is the same without.
route "/rooms/{n}" {
  presence {
    subject = "presence.rooms.${path.n}"
  }
  source "nats" {
    subject = "rooms.${path.n}"
  }
}
