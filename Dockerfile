# syntax=docker/dockerfile:1
#
# nsqd and nsqlookupd (thread-per-core, io_uring).
#
#   docker build -t nsqd-rs .
#   docker run --security-opt seccomp=deploy/docker/seccomp-io_uring.json \
#       --ulimit memlock=-1 -p 4150:4150 -p 4151:4151 -v nsqd-data:/data nsqd-rs
#   docker run --security-opt seccomp=deploy/docker/seccomp-io_uring.json \
#       --ulimit memlock=-1 -p 4160:4160 -p 4161:4161 --entrypoint nsqlookupd nsqd-rs
#
# Docker's default seccomp profile blocks io_uring; the profile in
# deploy/docker/ is Docker's default plus io_uring_setup, io_uring_enter and
# io_uring_register. Arguments after the image name are nsqd flags.

# --- build -------------------------------------------------------------------
FROM rust:1-bookworm AS builder
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --locked --release -p nsq-broker -p nsq-lookupd \
    && mkdir -p /out \
    && cp target/release/nsqd target/release/nsqlookupd /out/

# --- runtime -----------------------------------------------------------------
FROM debian:bookworm-slim
RUN groupadd --gid 10001 nsq \
    && useradd --uid 10001 --gid nsq --no-create-home \
       --home-dir /data --shell /usr/sbin/nologin nsq \
    && mkdir /data \
    && chown nsq:nsq /data
COPY --from=builder /out/nsqd /out/nsqlookupd /usr/local/bin/
USER nsq:nsq
# nsqd's data directory (locked: one nsqd per volume). A named volume takes
# this directory's owner (nsq); chown a bind-mounted directory to 10001.
VOLUME ["/data"]
WORKDIR /data
# nsqd TCP, nsqd HTTP, nsqlookupd TCP, nsqlookupd HTTP
EXPOSE 4150 4151 4160 4161
# SIGTERM (docker stop) makes nsqd write memory, in-flight and deferred
# messages to /data before exiting: give it time (docker stop -t 75).
STOPSIGNAL SIGTERM
ENTRYPOINT ["nsqd", "--data-path=/data"]
