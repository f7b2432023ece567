# The origin service. Build from the repository root:  docker build -t popup-origin .
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p popup-origin

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates tzdata \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 popup
COPY --from=build /src/target/release/popup-origin /usr/local/bin/popup-origin
USER popup
ENV POPUP_LISTEN=0.0.0.0:8080
EXPOSE 8080
# Secrets (POPUP_TOKEN_SECRET, POPUP_BOOTSTRAP_ADMIN_KEY, DATABASE_URL) come from the environment at run time.
ENTRYPOINT ["popup-origin"]
CMD ["serve"]
