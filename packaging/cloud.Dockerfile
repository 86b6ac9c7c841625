# syntax=docker/dockerfile:1
# The cloud's image, for packaging/compose.yaml (a reference deployment,
# untested: see the top of that file). Build from the repository's root:
#
#   docker build -f packaging/cloud.Dockerfile -t remoteagent-cloud:local .
#
# Two stages: the release build of the `remoteagent-cloud` binary (package
# cloud/, no [[bin]] section, so the binary is named after the package),
# then only that binary on Debian slim. rustls (no OpenSSL) and a bundled
# SQLite: the binary needs nothing but glibc and the CA certificates.

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
# The caches keep downloaded crates and compiled dependencies between
# builds; the binary is copied out because the target cache is not part
# of the image.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p remoteagent-cloud \
 && cp target/release/remoteagent-cloud /usr/local/bin/remoteagent-cloud

FROM debian:bookworm-slim
# ca-certificates: the Bot API and STT_URL over HTTPS; curl: the health check.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/*
# Never root. The data dir holds nothing durable here (PostgreSQL is the
# database, the signing key comes from REMOTEAGENT_SIGNING_KEY); output
# files and files for the chat (up to 50 MB each) pass through /tmp.
RUN useradd --system --uid 10001 --create-home --home-dir /var/lib/remoteagent-cloud remoteagent
COPY --from=build /usr/local/bin/remoteagent-cloud /usr/local/bin/remoteagent-cloud
USER remoteagent
ENV REMOTEAGENT_BIND=0.0.0.0:8080 \
    REMOTEAGENT_DATA_DIR=/var/lib/remoteagent-cloud
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/remoteagent-cloud"]
CMD ["serve"]
