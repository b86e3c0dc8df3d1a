# nodemesh: one static binary (controller, proxy, dns) on a minimal,
# non-root image.
#
#   docker build -t ghcr.io/nodemesh/nodemesh:dev \
#     --build-arg VERSION=$(git describe --tags --always --dirty) \
#     --build-arg COMMIT=$(git rev-parse --short HEAD) .
#
# Multi-platform: docker buildx build --platform linux/amd64,linux/arm64 .
# The build stage runs on the builder's own platform and cross-compiles,
# which Go does without emulation.

FROM --platform=$BUILDPLATFORM golang:1.26 AS build
WORKDIR /src
# Modules first, so that a source change does not download them again.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG TARGETOS=linux
ARG TARGETARCH
ARG VERSION=dev
ARG COMMIT=unknown
# CGO_ENABLED=0: a static binary that needs no libc in the final image.
# -buildvcs=false: .git is not in the build context (.dockerignore); the
# version comes from the build arguments instead, as in the Makefile.
RUN CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH \
    go build -trimpath -buildvcs=false \
      -ldflags "-s -w -X github.com/nodemesh/nodemesh/pkg/version.Version=${VERSION} -X github.com/nodemesh/nodemesh/pkg/version.Commit=${COMMIT}" \
      -o /out/nodemesh ./cmd/nodemesh

# distroless static: CA certificates, /etc/passwd with the nonroot user, tzdata,
# and nothing else: no shell, no package manager.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/nodemesh /nodemesh
# Numeric, so that Kubernetes' runAsNonRoot can verify it (65532 is
# distroless's nonroot; daemonset/ sets the same).
USER 65532:65532
ENTRYPOINT ["/nodemesh"]
