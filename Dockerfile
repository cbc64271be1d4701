# The image the Helm chart runs: the `vuoro` binary on PATH, as a non-root user, nothing else.
#
#   docker build -t vuoro:0.1.0 .
#
# Build stage: the workspace's toolchain; rdkafka-sys builds librdkafka from source with the
# image's C compiler and make.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p vuoro \
    && install -D -m 0755 target/release/vuoro /out/vuoro

# Runtime stage: the binary needs only glibc and zlib, both in the slim image; the chart runs
# it with a read-only root filesystem as user 65532.
FROM debian:bookworm-slim
COPY --from=build /out/vuoro /usr/local/bin/vuoro
USER 65532:65532
EXPOSE 50051 9464
ENTRYPOINT ["vuoro"]
CMD ["serve"]
