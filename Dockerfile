# syntax=docker/dockerfile:1
# salvo's container image: worker (the entrypoint), producer, gateway and
# mockupstream, static binaries on a small non-root image.
#
#   docker build --build-arg VERSION=$(git describe --tags --always --dirty) -t salvo .
#   docker run --rm salvo --version
#   docker run --rm --entrypoint producer salvo --help
#
# `make docker` runs the build (it needs a Docker daemon). The build stage
# runs deployments/build-static.sh, the script `make check-deploy` and CI
# run too, so the binaries CI checks are built exactly as these are.

ARG GO_VERSION=1.26.8

FROM golang:${GO_VERSION}-alpine AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
ARG VERSION=devel
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
	VERSION="${VERSION}" sh deployments/build-static.sh /out

# Alpine rather than distroless/scratch: its busybox wget lets
# docker-compose.yml's health checks ask /readyz from inside the container
# (Kubernetes probes need nothing inside it). CA certificates come with it.
FROM alpine:3.22
RUN adduser -D -u 10001 -s /sbin/nologin salvo && apk add --no-cache tzdata
COPY --from=build /out/ /usr/local/bin/
# The worker's own default is 127.0.0.1:8081 (private on a bare host);
# in a container the health, readiness and metrics listener must be
# reachable from outside it: probes, Prometheus, compose health checks.
ENV SALVO_HTTP_ADDR=:8081
# The same for the gateway (docs/GATEWAY.md), whose own default is
# 127.0.0.1:8080.
ENV SALVO_GATEWAY_ADDR=:8080
EXPOSE 8081 8080
USER 10001:10001
WORKDIR /home/salvo
ENTRYPOINT ["/usr/local/bin/worker"]
