# syntax=docker/dockerfile:1.7
# One build of the workspace, then one small runtime image per service:
#   docker build --target identity -t timetravelers/identity .
#   docker build --target timetravelers -t timetravelers/all-in-one .
# Dependencies are cached across builds by BuildKit cache mounts (registry and target dir).

FROM docker.io/library/rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked -p tt-identity -p timetravelers \
    && mkdir -p /out \
    && cp target/release/identity target/release/timetravelers /out/

# Runtime: distroless (glibc, CA certificates, no shell, no package manager), non-root.
FROM gcr.io/distroless/cc-debian12:nonroot AS identity
COPY --from=build /out/identity /usr/local/bin/identity
USER 65532:65532
EXPOSE 50051 9464
ENTRYPOINT ["/usr/local/bin/identity"]

FROM gcr.io/distroless/cc-debian12:nonroot AS timetravelers
COPY --from=build /out/timetravelers /usr/local/bin/timetravelers
USER 65532:65532
WORKDIR /home/nonroot
EXPOSE 50051 9464
ENTRYPOINT ["/usr/local/bin/timetravelers", "--listen", "0.0.0.0:50051", "--metrics-addr", "0.0.0.0:9464", "--data-dir", "/home/nonroot/data"]
