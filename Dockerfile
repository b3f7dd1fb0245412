# Build: docker build -t ssegate .
# Run:   docker run -p 8080:8080 -e SSEGATE_NATS_URL=nats://nats:4222 ssegate
#   or:  docker run -p 8080:8080 -v $PWD/ssegate.hcl:/etc/ssegate/ssegate.hcl:ro ssegate
# The config is read from /etc/ssegate/ssegate.hcl (SSEGATE_CONFIG). The
# image ships deploy/image.hcl there: no secret, /sse fed by the NATS named
# in SSEGATE_NATS_URL, which it refuses to start without. A config of your
# own must listen on 0.0.0.0 (the default 127.0.0.1 is unreachable from
# outside the container) and keep an admin listener on 127.0.0.1:9090 for
# the HEALTHCHECK, or override it.

FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/ssegate ./cmd/ssegate \
 && SSEGATE_NATS_URL=nats://nats:4222 /out/ssegate validate -config deploy/image.hcl

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/ssegate /usr/local/bin/ssegate
COPY deploy/image.hcl /etc/ssegate/ssegate.hcl
ENV SSEGATE_CONFIG=/etc/ssegate/ssegate.hcl
EXPOSE 8080
USER nonroot:nonroot
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 \
  CMD ["/usr/local/bin/ssegate", "health"]
ENTRYPOINT ["/usr/local/bin/ssegate"]
CMD ["run"]
