#!/bin/sh
# Builds salvo's container binaries — worker, producer, gateway and
# mockupstream — static (CGO_ENABLED=0, no dynamic loader, no libc) into
# the directory given, with the version baked in. The Dockerfile's build
# stage runs this script, and so do `make check-deploy` and the deployments
# test (TestContainerBinariesAreStatic), so the image's build steps are
# exercised without a Docker daemon and cannot drift from what CI checks.
#
#   VERSION=v1.2.3 deployments/build-static.sh OUTDIR
#
# VERSION defaults to `git describe --tags --always --dirty`, else "devel";
# GOOS/GOARCH pass through for cross builds.
set -eu
out=${1:?usage: build-static.sh OUTDIR}
case $out in
/*) ;;
*) out=$(pwd)/$out ;;
esac
cd "$(dirname "$0")/.."
if [ -z "${VERSION:-}" ]; then
	VERSION=$(git describe --tags --always --dirty 2>/dev/null || echo devel)
fi
CGO_ENABLED=0 go build -trimpath -buildvcs=false \
	-ldflags "-s -w -X github.com/salvo-run/salvo/internal/version.Version=${VERSION}" \
	-o "$out/" ./cmd/worker ./cmd/producer ./cmd/gateway ./cmd/mockupstream
