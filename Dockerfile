# Flowgate: build in the Rust image, run in a slim Debian with the static files beside the binary.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src src
COPY migrations migrations
COPY templates templates
COPY static static
RUN cargo build --release --locked --bin flowgate

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/flowgate /usr/local/bin/flowgate
COPY static /usr/share/flowgate/static
ENV FLOWGATE_STATIC=/usr/share/flowgate/static
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/flowgate"]
CMD ["serve", "--listen", "0.0.0.0:8080"]
