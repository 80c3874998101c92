# Multi-stage build: release binary on Debian slim, non-root, demo config and fixtures baked in.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src src
COPY benches benches
RUN cargo build --release --locked --bin jit-origin

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* && useradd --system --uid 10001 origin
WORKDIR /app
COPY --from=build /src/target/release/jit-origin /usr/local/bin/jit-origin
COPY config config
COPY fixtures fixtures
# Listen on all interfaces inside the container; mount another config over /app/config.
RUN sed -i 's/^listen = .*/listen = "0.0.0.0:8080"/' config/origin.toml
USER origin
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s CMD curl -fsS http://127.0.0.1:8080/healthz || exit 1
ENTRYPOINT ["jit-origin"]
CMD ["serve", "--config", "/app/config/origin.toml"]
