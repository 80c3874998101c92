# jit-origin image: release binary on Debian slim, non-root, demo config and fixtures baked in.
#
#   docker build -t jit-origin:0.2.0 .
#   docker run --rm -p 8080:8080 jit-origin:0.2.0
#
# In Kubernetes (deploy/) the config comes from a ConfigMap and media from object storage;
# the baked-in config serves the fixtures from local disk for a first look.
# tests/deploy/validate.py checks this file statically (CI has no Docker engine).

# ---- build: the release binary -------------------------------------------------------------
# The toolchain tag's Debian release must match the runtime stage's (glibc).
FROM rust:1.95-bookworm AS build
WORKDIR /src
# Line tables only (the release profile keeps limited debug info, `debug = 1`, for profiling).
ENV CARGO_PROFILE_RELEASE_DEBUG=line-tables-only
# Dependencies first, against stub sources, so this layer is rebuilt only when Cargo.toml or
# Cargo.lock change. Cargo.toml declares the bench target, so its file must exist.
COPY Cargo.toml Cargo.lock ./
RUN mkdir -p src benches \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs \
    && echo 'fn main() {}' > benches/packager.rs \
    && cargo build --release --locked --bin jit-origin \
    && rm -rf src
COPY src src
# Newer than the stub build, so cargo rebuilds the crate itself.
RUN touch src/lib.rs src/main.rs \
    && cargo build --release --locked --bin jit-origin

# ---- runtime ---------------------------------------------------------------------------------
FROM debian:bookworm-slim
ARG VERSION=0.2.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="jit-origin" \
      org.opencontainers.image.description="Just-in-time HLS/DASH packaging origin: MP4/CMAF in object storage, HLS and DASH out" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="docker.io/library/debian:bookworm-slim"
# ca-certificates: HTTPS to S3, Azure Blob and GCS. curl: the HEALTHCHECK probe.
# Versions follow Debian stable's security updates, so they are not pinned.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 origin \
    && useradd --system --uid 10001 --gid origin --no-create-home --shell /usr/sbin/nologin origin
WORKDIR /app
COPY --from=build /src/target/release/jit-origin /usr/local/bin/jit-origin
# Root-owned and read-only for the server's user. Storage `file://../fixtures` in the config
# resolves against the config's folder: /app/fixtures.
COPY config/origin.toml /app/config/origin.toml
COPY fixtures /app/fixtures
# All interfaces inside the container (the file's default is loopback).
RUN sed -i 's/^listen = .*/listen = "0.0.0.0:8080"/' /app/config/origin.toml
# Numeric, so Kubernetes' runAsNonRoot can verify it without /etc/passwd.
USER 10001:10001
# 8080: plain HTTP (the config's `listen`). 8443: HTTPS, once the config has a [tls] section
# (`listen`, `cert_pem`, `key_pem`).
EXPOSE 8080 8443
# SIGTERM: stop accepting, fail /readyz, drain in-flight requests for up to 30 s.
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD ["curl", "-fsS", "-o", "/dev/null", "http://127.0.0.1:8080/healthz"]
ENTRYPOINT ["/usr/local/bin/jit-origin"]
CMD ["serve", "--config", "/app/config/origin.toml"]
