# ssegate replica behind the load balancer of docker-compose.yml. Every
# replica runs this same file; NATS (a 3-node cluster with JetStream) is
# what they share.
listen           = env("SSEGATE_LISTEN", "0.0.0.0:8080")
shutdown_timeout = "20s"
shutdown_delay   = "5s" # /readyz says 503 first, for the load balancer

# The load balancer's X-Forwarded-For is believed (per-address limits):
# the compose network's subnet, pinned in docker-compose.yml.
trusted_proxies        = [env("SSEGATE_TRUSTED_PROXIES", "10.89.0.0/24")]
max_connections_per_ip = 50

log {
  format = "json"
}

# /healthz and /readyz for the orchestrator, not published by the LB;
# they stay open. /metrics, /reload, /tail and /debug/pprof need the
# operators' token: ssegate refuses an admin listener beyond loopback
# without auth.
admin {
  listen = env("SSEGATE_ADMIN_LISTEN", "0.0.0.0:9090")
  auth   = "ops"
}

auth "bearer" "ops" {
  tokens = [env("SSEGATE_ADMIN_TOKEN")]
}

nats {
  url  = env("SSEGATE_NATS_URL", "nats://nats-1:4222,nats://nats-2:4222,nats://nats-3:4222")
  name = "ssegate"
}

# Publish to the subject "events" from any service on NATS; every browser
# on /events gets each event once, resuming on any replica.
route "/events" {
  history {
    store    = "jetstream"
    replicas = 3
    max_age  = "24h"
  }
  source "nats" {
    subject = "events"
  }
}

# A webhook POSTed to either replica reaches the browsers of both; it is
# answered 202 once JetStream has stored it, and a retry is stored once.
route "/deploys" {
  history {
    store    = "jetstream"
    replicas = 3
  }
  source "webhook" {
    path  = "/hooks/deploy"
    event = "deploy"
    id    = try(msg.headers["Webhook-Id"], null)
    verify "bearer" {
      tokens = [env("SSEGATE_DEPLOY_TOKEN")]
    }
  }
}
