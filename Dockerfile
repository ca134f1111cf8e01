# warroom: the `warroom` binary in a small, non-root image.
#
#   docker build -t warroom:0.1.0 .
#   docker run --rm -p 8080:8080 warroom:0.1.0                 # serve, SQLite in /var/lib/warroom
#   docker run --rm -it warroom:0.1.0 console --ephemeral      # the terminal console
#   docker run --rm warroom:0.1.0 check                        # validate configuration
#
# Configuration comes from WARROOM_<SECTION>__<KEY> variables and/or `--config FILE` (mount the
# file); see warroom.example.toml. Several replicas need PostgreSQL (WARROOM_DATABASE__URL);
# deploy/kubernetes/ runs three.

# ---- build ------------------------------------------------------------------------------------
# The official Rust image (Debian bookworm, slim): it already has gcc and libc6-dev, which is all
# the C code needs. rusqlite's bundled SQLite is compiled with `cc`, and aws-lc-sys (rustls'
# crypto provider) builds with its `cc` builder on x86_64 and aarch64 Linux, for which it ships
# pre-generated bindings: no cmake, clang, perl, Go or NASM (NASM is for Windows only). Should a
# build ever pick the CMake builder (AWS_LC_SYS_CMAKE_BUILDER=1, another target), add
# `apt-get install -y --no-install-recommends cmake` here.
ARG RUST_VERSION=1.95
FROM rust:${RUST_VERSION}-slim-bookworm AS builder

SHELL ["/bin/bash", "-o", "pipefail", "-c"]
WORKDIR /build
# Keep std's debug info out of the binary but keep symbols, so a panic's backtrace has names.
# (Set here rather than in Cargo.toml; the same value for both builds below keeps the
# dependency layer valid.)
ENV CARGO_TERM_COLOR=never \
    CARGO_PROFILE_RELEASE_STRIP=debuginfo

# 1. Dependencies only: the manifest and the lock file with an empty crate, so this layer is
#    rebuilt only when Cargo.toml or Cargo.lock change.
COPY Cargo.toml Cargo.lock ./
RUN mkdir -p src \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs \
    && cargo build --release --locked --bin warroom \
    && rm -rf src

# 2. The crate itself. Templates, playbooks and warroom.example.toml (the built-in defaults) are
#    compiled into the binary with include_str!, so they are needed here and not at run time.
COPY src ./src
COPY templates ./templates
COPY playbooks ./playbooks
COPY warroom.example.toml ./
# COPY keeps the files' own modification times, which can be older than the empty crate built
# above: touch the crate roots so cargo rebuilds warroom, and check that the binary is the real
# one (the empty main prints nothing).
RUN touch src/main.rs src/lib.rs \
    && cargo build --release --locked --bin warroom \
    && ./target/release/warroom --version | grep '^warroom ' \
    && mkdir -p /out/data \
    && cp target/release/warroom /out/warroom

# ---- run --------------------------------------------------------------------------------------
# distroless "cc": glibc, libgcc, CA certificates (rustls uses the system roots) and a nonroot
# user (65532), and nothing else: no shell, no package manager. The builder is bookworm too, so
# the binary's glibc matches. Pin by digest in production (cc-debian12:nonroot@sha256:…).
FROM gcr.io/distroless/cc-debian12:nonroot

LABEL org.opencontainers.image.title="warroom" \
      org.opencontainers.image.description="Incident-response ChatOps bot: incidents, escalation, PagerDuty and Kubernetes runbooks from chat" \
      org.opencontainers.image.licenses="Apache-2.0"

COPY --from=builder /out/warroom /usr/local/bin/warroom
# A writable working folder for the default SQLite store (database.path = "warroom.db"), for
# `docker run` without PostgreSQL; mount a volume here to keep it. With PostgreSQL (and in
# Kubernetes, where the root filesystem is read-only) nothing is written to disk.
COPY --from=builder --chown=65532:65532 /out/data /var/lib/warroom
WORKDIR /var/lib/warroom

# warroom.example.toml binds 127.0.0.1:8080; in a container it must listen on every interface.
ENV WARROOM_SERVER__LISTEN=0.0.0.0:8080

USER 65532:65532
EXPOSE 8080

# No HEALTHCHECK: distroless has no shell and no curl to run one, and warroom has no
# self-probe subcommand. Orchestrators probe over HTTP instead: GET /healthz (the process is
# up) and GET /readyz (store reachable and migrated, scheduler loop alive; 503 otherwise), as
# deploy/kubernetes/deployment.yaml does.

ENTRYPOINT ["/usr/local/bin/warroom"]
CMD ["serve"]
