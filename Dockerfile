# Kiln's server image: the `kiln` binary on Debian slim, run as an unprivileged user, with the data
# directory on a volume.
#
#   docker build -t kiln .
#   docker run -d -p 8080:8080 -v kiln-data:/var/lib/kiln kiln
#   docker logs <container>        # the administrator token of the first start
#
# Python trainers and TensorFlow, scikit-learn and XGBoost models run in virtual environments that
# Kiln builds under the data directory, from the image's python3.

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p kiln \
 && strip target/release/kiln \
 && cp target/release/kiln /usr/local/bin/kiln

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates python3 python3-venv \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --home-dir /var/lib/kiln --create-home kiln
COPY --from=build /usr/local/bin/kiln /usr/local/bin/kiln
USER kiln
WORKDIR /var/lib/kiln
VOLUME /var/lib/kiln
ENV KILN_DATA_DIR=/var/lib/kiln
EXPOSE 8080
# 0.0.0.0 inside the container; publish the port on the host's loopback, or give the server a
# certificate (KILN_TLS_CERT, KILN_TLS_KEY) before publishing it to the network.
ENTRYPOINT ["kiln", "server"]
CMD ["--bind", "0.0.0.0:8080"]
