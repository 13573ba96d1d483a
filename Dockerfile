# syntax=docker/dockerfile:1
# ThermoAlert as one container (issue 8): the release server with the HDFS archive backend,
# its site (WASM, CSS), a JVM and the Hadoop client jars that hdrs loads over JNI. Run it next
# to an existing Kafka and HDFS, or the whole stack with docker-compose.yml. Checked without a
# Docker engine by server/tests/deploy.rs (settings, ports, versions, a smoke run of exactly
# what the runtime stage copies).

# ---- builder: the toolchain of rust-toolchain.toml, cargo-leptos and wasm-bindgen-cli
FROM rust:1.95-bookworm AS builder
ARG DEBIAN_FRONTEND=noninteractive
# JDK headers for libhdfs (hdrs builds it), Maven for the Hadoop client jars.
RUN apt-get update \
 && apt-get install -y --no-install-recommends openjdk-17-jdk-headless maven \
 && rm -rf /var/lib/apt/lists/*
# Node.js for npm's binaryen (wasm-opt 132): Debian's binaryen yields a WASM that never
# hydrates (see ../shared/notes/toolchain.md), and bookworm's Node.js is older than ours.
COPY --from=node:20-bookworm-slim /usr/local/bin/node /usr/local/bin/node
COPY --from=node:20-bookworm-slim /usr/local/lib/node_modules/npm /usr/local/lib/node_modules/npm
RUN ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm

WORKDIR /src
COPY rust-toolchain.toml ./
RUN rustup toolchain install && rustup target add wasm32-unknown-unknown
# Exact versions: newer cargo-leptos needs a newer rustc; wasm-bindgen-cli must equal the
# wasm-bindgen of Cargo.lock (not --locked: one of its locked dependencies was yanked).
ARG CARGO_LEPTOS_VERSION=0.3.10
ARG WASM_BINDGEN_VERSION=0.2.130
RUN cargo install cargo-leptos --version "$CARGO_LEPTOS_VERSION" --locked \
 && cargo install wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION" \
 && rm -rf "$CARGO_HOME/registry"

# The Hadoop client jars, fetched by the same script (and so the same version) as the
# project's local HDFS: Maven copies hadoop-common, -hdfs, -hdfs-client and their runtime
# dependencies into its cache.
COPY scripts/services.sh scripts/services.sh
RUN scripts/services.sh fetch hdfs && mv "$HOME"/.cache/thermoalert/hadoop-*/lib /opt/hadoop-lib

COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund --loglevel=error

COPY Cargo.toml Cargo.lock ./
COPY app app
COPY frontend frontend
COPY pipeline pipeline
COPY server server
COPY style style
COPY public public
RUN cargo leptos build --release --bin-features hdfs --cargo-locked

# ---- runtime: the binary, its site, a JRE (libjvm) and the jars; nothing else
FROM debian:bookworm-slim
ARG DEBIAN_FRONTEND=noninteractive
# The JRE's post-install needs the man directory that slim images leave out; curl is for
# the health check.
RUN mkdir -p /usr/share/man/man1 \
 && apt-get update \
 && apt-get install -y --no-install-recommends openjdk-17-jre-headless curl ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --no-create-home --home-dir /data thermoalert \
 && mkdir /data && chown thermoalert:thermoalert /data

COPY --from=builder /src/target/release/thermoalert /opt/thermoalert/thermoalert
COPY --from=builder /src/target/site /opt/thermoalert/site
COPY --from=builder /opt/hadoop-lib /opt/hadoop/lib
COPY deploy/hadoop/hdfs-site.xml deploy/hadoop/log4j.properties /opt/hadoop/conf/
COPY --chmod=0755 deploy/entrypoint.sh /opt/thermoalert/entrypoint.sh

# Every THERMO_* setting of `thermoalert serve --help` can be given with -e; these are the
# image's own. THERMO_KAFKA_BROKERS and THERMO_HDFS_URL unset: embedded broker, local archive.
ENV THERMO_DATA_DIR=/data \
    LEPTOS_SITE_ADDR=0.0.0.0:3000 \
    LEPTOS_SITE_ROOT=/opt/thermoalert/site \
    LEPTOS_OUTPUT_NAME=thermoalert \
    LEPTOS_ENV=PROD \
    HADOOP_LIB=/opt/hadoop/lib \
    HADOOP_CONF_DIR=/opt/hadoop/conf

USER thermoalert
WORKDIR /data
VOLUME /data
EXPOSE 3000
# The port follows LEPTOS_SITE_ADDR, so `-e LEPTOS_SITE_ADDR=0.0.0.0:8080` keeps it healthy.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD curl -fsS "http://127.0.0.1:${LEPTOS_SITE_ADDR##*:}/healthz" || exit 1
# A stop flushes the archive and commits offsets first (30 s at most): give it
# `--stop-timeout 40` (docker run) or `stop_grace_period: 40s` (compose).
STOPSIGNAL SIGTERM
ENTRYPOINT ["/opt/thermoalert/entrypoint.sh"]
CMD ["serve"]
