# syntax=docker/dockerfile:1.7
# One build of the workspace, then a small runtime image for the service named by SERVICE:
#   docker build --build-arg SERVICE=identity -t timetravelers/identity .
#   docker build --build-arg SERVICE=timetravelers -t timetravelers/all-in-one .
# Dependencies are cached across builds by BuildKit cache mounts (registry and target dir).

FROM docker.io/library/rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked --workspace --exclude tt-e2e --exclude tt-testkit --bins \
    && mkdir -p /out \
    && find target/release -maxdepth 1 -type f -perm -u+x -exec cp {} /out/ \;

# Runtime: distroless (glibc, CA certificates, no shell, no package manager), non-root.
FROM gcr.io/distroless/cc-debian12:nonroot
ARG SERVICE=timetravelers
COPY --from=build /out/${SERVICE} /usr/local/bin/service
USER 65532:65532
WORKDIR /home/nonroot
# Defaults for a container; Kubernetes sets them again from the platform ConfigMap.
ENV TT_LISTEN_ADDR=0.0.0.0:50051 \
    TT_METRICS_ADDR=0.0.0.0:9464 \
    TT_DATA_DIR=/home/nonroot/data
EXPOSE 50051 9464
ENTRYPOINT ["/usr/local/bin/service"]
