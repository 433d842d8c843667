# lambdagate container image.
#
#   docker build -t lambdagate .
#   docker run --rm -p 8080:8080 -v "$PWD/routes.toml:/etc/lambdagate/routes.toml:ro" lambdagate
#
# Stage 1 builds the release binary; dependencies are compiled in their own
# layer (keyed on Cargo.toml + Cargo.lock only), so editing the source does
# not rebuild them. Stage 2 is a slim Debian with the binary, CA roots and a
# non-root user.

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-bookworm AS build
WORKDIR /build
# 1. Dependencies only: compile them against a stub crate. Cargo reads every
#    workspace member (the small example functions) and wants every declared
#    target's file to exist, so those come in too.
COPY Cargo.toml Cargo.lock ./
COPY examples/functions/ examples/functions/
RUN mkdir -p src tests/it benches \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs tests/it/main.rs benches/local_backend.rs benches/sigv4_sign.rs \
    && cargo build --release --locked --bin lambdagate \
    && rm -rf src tests benches
# 2. The real sources (the build context is filtered by .dockerignore).
COPY . .
# COPY keeps the context's modification times, which may be older than the
# stub's: touch so cargo rebuilds the crate itself.
RUN touch src/main.rs src/lib.rs \
    && cargo build --release --locked --bin lambdagate \
    && mkdir -p /out/etc \
    && cp target/release/lambdagate /out/lambdagate \
    && for p in routes.toml schemas templates examples/auth; do \
         if [ -e "$p" ]; then mkdir -p "/out/etc/$(dirname "$p")" && cp -r "$p" "/out/etc/$p"; fi; \
       done

FROM debian:bookworm-slim AS runtime
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /etc/lambdagate --shell /usr/sbin/nologin lambdagate \
    && mkdir -p /etc/lambdagate \
    && chown lambdagate:lambdagate /etc/lambdagate
COPY --from=build /out/lambdagate /usr/local/bin/lambdagate
# The example routes file and the files it names (JSON schemas, templates,
# the demo JWT secret), so the default config loads; its function routes need
# the example functions, which the image does not carry. Mount your own
# routes.toml (and what it references) over it.
COPY --from=build --chown=lambdagate:lambdagate /out/etc/ /etc/lambdagate/
WORKDIR /etc/lambdagate
USER lambdagate
ENV LAMBDAGATE_CONFIG=/etc/lambdagate/routes.toml
# 8080: the API. 9081: the admin API, /metrics, /healthz, /readyz (only with [admin]).
EXPOSE 8080 9081
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 \
    CMD ["lambdagate", "health", "--addr", "127.0.0.1:8080"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["lambdagate"]
CMD ["serve", "--listen", "0.0.0.0:8080", "--admin-listen", "0.0.0.0:9081"]
