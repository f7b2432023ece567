# The origin's image: one binary, every role (`serve`, `ingest`, `gateway`, `messenger`, `migrate`).
# Build from the repository root:  docker build -t popup-origin .   (compose.yaml does it for you)
#
# The dependencies are compiled in a layer of their own with cargo-chef: its recipe holds only the
# workspace's manifests and lock file, so an edit to the project's code rebuilds the project's crates and
# reuses the layer of the few hundred dependencies; only a change to Cargo.toml or Cargo.lock recompiles
# them.
ARG DEBIAN_SUITE=bookworm

FROM rust:1.95-slim-${DEBIAN_SUITE} AS chef
RUN cargo install cargo-chef --version 0.1.78 --locked
WORKDIR /src

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS build
COPY --from=planner /src/recipe.json recipe.json
RUN cargo chef cook --release --locked --package popup-origin --recipe-path recipe.json
COPY . .
RUN cargo build --release --locked --package popup-origin

# What every role runs in. No curl, no CA bundle, no tz database: the health check is the binary's own
# `healthcheck` role, TLS roots (Twilio) are compiled in, and so are the time zones. The binary is added by
# the last stage; scripts/docker-smoke puts in one built on a machine of the same Debian release instead.
FROM debian:${DEBIAN_SUITE}-slim AS runtime
RUN groupadd --gid 10001 popup \
    && useradd --uid 10001 --gid popup --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin popup
# Inside a container a role must listen on every interface to be reached at all; which ports are
# published is the operator's choice (compose.yaml binds them to the host's loopback).
ENV POPUP_LISTEN=0.0.0.0:8080 \
    POPUP_GATEWAY_LISTEN=0.0.0.0:8079 \
    POPUP_HEALTHCHECK_URL=http://127.0.0.1:8080/healthz
USER 10001:10001
EXPOSE 8080 8079
# Liveness (/healthz), not readiness (/readyz): a role rides out a Postgres or Redis outage by itself
# (503s, then reconnecting), and restarting it would not bring either back. For the gateway set
# POPUP_HEALTHCHECK_URL=http://127.0.0.1:8079/healthz; `ingest` and `messenger` answer no request but
# /metrics (turn the check off for them, as compose.yaml does). /metrics stays on the container's loopback
# (POPUP_OPS_ADDR) unless the operator sets it to an interface a Prometheus can reach.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 CMD ["popup-origin", "healthcheck"]
# Secrets (DATABASE_URL, REDIS_URL, POPUP_TOKEN_SECRET, POPUP_GATEWAY_TOKEN, ...) come from the
# environment at run time, never from the image.
ENTRYPOINT ["popup-origin"]
CMD ["serve"]

FROM runtime
COPY --from=build /src/target/release/popup-origin /usr/local/bin/popup-origin
