# Tessera in a container: `docker build -t tessera .`, or `docker compose up` with compose.yaml
# (Tessera and Redis). No container engine runs in this project's CI: only static checks of
# this file and compose.yaml run there (runtime/tests/packaging.rs); see docs/deployment.md.

# Stage 1: build the release binary.
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p tessera \
    && cp target/release/tessera /tessera

# Stage 2: the runtime, Debian slim plus curl for the health check.
FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --user-group --home-dir /var/lib/tessera --create-home \
        --shell /usr/sbin/nologin tessera
COPY --from=build /tessera /usr/local/bin/tessera
COPY tessera.example.toml /usr/share/doc/tessera/tessera.example.toml
# Settings as TESSERA_<SECTION>_<KEY> variables (a mounted file and --config work too): listen
# on every interface of the container, keep the embedded store and the API key file in the
# volume. compose.yaml switches the store to Redis.
ENV TESSERA_SERVER_LISTEN_ADDR=0.0.0.0:8080 \
    TESSERA_STORE_DATA_DIR=/var/lib/tessera \
    TESSERA_AUTH_API_KEY_FILE=/var/lib/tessera/api-key
USER tessera
WORKDIR /var/lib/tessera
VOLUME ["/var/lib/tessera"]
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=15s --retries=3 \
    CMD curl -fsS -o /dev/null http://127.0.0.1:8080/health || exit 1
ENTRYPOINT ["tessera"]
CMD ["serve"]
