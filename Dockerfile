# syntax=docker/dockerfile:1

# Stepcast image: one static binary, subcommands api | worker | migrate.
#   docker build -t stepcast:local .
# deploy/compose_test.go checks this file against docker-compose.yml.

# Keep in step with the `go` directive of go.mod (the golang image runs
# with GOTOOLCHAIN=local, so an older toolchain would refuse to build).
ARG GO_VERSION=1.26.8

FROM --platform=$BUILDPLATFORM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src

# Dependencies first: this layer is reused until go.mod / go.sum change.
COPY go.mod go.sum ./
RUN go mod download && go mod verify

COPY . .
ARG TARGETOS
ARG TARGETARCH
# Pure Go build (tzdata is embedded via time/tzdata), so the result runs on
# a distroless/static base with no libc, CA bundle aside.
RUN --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=${TARGETOS} GOARCH=${TARGETARCH} \
    go build -trimpath -ldflags="-s -w" -o /stepcast ./cmd/stepcast

# distroless/static: CA certificates, /etc/passwd with nonroot (65532), no shell.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /stepcast /usr/local/bin/stepcast
USER nonroot:nonroot
# 8080: api (admin API, LINE webhooks, /healthz /readyz /metrics)
# 8081: worker health + metrics
EXPOSE 8080 8081
ENTRYPOINT ["/usr/local/bin/stepcast"]
CMD ["api"]
