# Build: docker build -t ssegate .
# Run:   docker run -p 8080:8080 -v $PWD/ssegate.hcl:/etc/ssegate/ssegate.hcl:ro ssegate
# The config is read from /etc/ssegate/ssegate.hcl (SSEGATE_CONFIG); the
# image ships config.example.hcl there, listening on 0.0.0.0:8080.

FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/ssegate ./cmd/ssegate \
 && /out/ssegate validate -config config.example.hcl

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/ssegate /usr/local/bin/ssegate
COPY config.example.hcl /etc/ssegate/ssegate.hcl
ENV SSEGATE_CONFIG=/etc/ssegate/ssegate.hcl \
    SSEGATE_LISTEN=0.0.0.0:8080
EXPOSE 8080
USER nonroot:nonroot
ENTRYPOINT ["/usr/local/bin/ssegate"]
CMD ["run"]
