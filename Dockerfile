# Flowgate: build in the Rust image, run in a slim Debian. The binary carries its static files
# and templates (src/web/assets.rs), so it is all the image needs.
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
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/flowgate"]
CMD ["serve", "--listen", "0.0.0.0:8080"]
