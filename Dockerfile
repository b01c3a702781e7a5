# ferry: the binary only, on a small base, as a non-root user.
#   docker build -t ferry .
FROM rust:1.94-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin ferry \
 && strip target/release/ferry

FROM debian:bookworm-slim
# CA certificates for HTTPS to S3 and the Kubernetes API.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 65532 ferry \
 && useradd --uid 65532 --gid 65532 --no-create-home --shell /usr/sbin/nologin ferry
COPY --from=build /src/target/release/ferry /usr/local/bin/ferry
USER 65532:65532
ENTRYPOINT ["ferry"]
