# aimake container image: one binary with the web app inside, the offline voice engine, and
# the neural voices ready to speak (ONNX Runtime and Kokoro v1.0, fetched and hash-checked by
# `aimake models pull` while the image is built).
#   docker build -t aimake .
#   docker run -v aimake-data:/data -p 8000:8000 aimake

# 1. The web app.
FROM node:20-bookworm-slim AS web
WORKDIR /src/web
COPY web/package.json web/package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY web/ ./
RUN npm run build

# 2. The binary (the build refuses to make a release without web/dist/index.html); cmake builds
# the bundled libopus and whisper.cpp. GGML_NATIVE=OFF builds whisper.cpp for any x86-64 CPU
# with AVX2, FMA and F16C (2013 and later) rather than for the build machine's own CPU, so the
# image runs wherever it is pulled; see docs/whisper.md for older CPUs.
FROM rust:1.95-bookworm AS build
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
RUN apt-get update \
    && apt-get install -y --no-install-recommends cmake \
    && rm -rf /var/lib/apt/lists/*
ENV GGML_NATIVE=OFF
WORKDIR /src
COPY .cargo .cargo
COPY Cargo.toml Cargo.lock build.rs ./
COPY migrations migrations
# Cargo.toml names the backup benchmark, so its file must be present to read the manifest.
COPY benches benches
COPY src src
COPY --from=web /src/web/dist web/dist
RUN cargo build --release --locked --bin aimake \
    && ./target/release/aimake version | grep -q "web app embedded"

# 3. The neural voice models, verified against the hashes compiled into the binary.
FROM debian:bookworm-slim AS models
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/aimake /usr/local/bin/aimake
ENV AIMAKE_MODELS__DIR=/opt/aimake/models
RUN aimake models pull runtime && aimake models pull kokoro

# 4. The runtime: CA roots for TLS to providers and S3, espeak-ng for the offline voice and the
# neural voices' phonemes.
FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates espeak-ng \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 aimake \
    && useradd --system --uid 10001 --gid 10001 --home-dir /data --no-create-home aimake \
    && mkdir -p /data && chown aimake:aimake /data
COPY --from=build /src/target/release/aimake /usr/local/bin/aimake
COPY --from=models --chown=aimake:aimake /opt/aimake/models /opt/aimake/models
USER 10001:10001
WORKDIR /data
ENV AIMAKE_SERVER__BIND=0.0.0.0:8000 \
    AIMAKE_DATA__DIR=/data \
    AIMAKE_MODELS__DIR=/opt/aimake/models \
    AIMAKE_LOG__FORMAT=json
VOLUME /data
EXPOSE 8000 443
HEALTHCHECK --interval=30s --timeout=10s --start-period=20s --retries=3 CMD ["aimake", "healthcheck"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["aimake"]
CMD ["serve"]
