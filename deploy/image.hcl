# The config the Docker image runs when given none of its own: every
# browser on /sse gets what is published to one NATS subject. It holds no
# secret and refuses to start without the NATS to read from:
#   docker run -p 8080:8080 -e SSEGATE_NATS_URL=nats://nats:4222 ssegate
# Mount your own config on /etc/ssegate/ssegate.hcl for anything more;
# inside a container it must listen on 0.0.0.0, not the default 127.0.0.1.
listen = "0.0.0.0:8080"

log {
  format = "json"
}

# For the image's HEALTHCHECK (ssegate health), inside the container only.
admin {
  listen = "127.0.0.1:9090"
}

nats {
  url = env("SSEGATE_NATS_URL")
}

route "/sse" {
  retry = "3s"
  source "nats" {
    subject = env("SSEGATE_SUBJECT", "events")
  }
}
