# The exporter as a container image: built in a Rust image, run from a distroless one (glibc,
# CA certificates, no shell) as its non-root user. The binary is the entrypoint:
#   docker build -t nomad-alloc-table:0.1.0 .
#   docker run --rm nomad-alloc-table:0.1.0 --help
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p nomad-alloc-table

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/nomad-alloc-table /usr/bin/nomad-alloc-table
# distroless's "nonroot" user.
USER 65532:65532
ENTRYPOINT ["/usr/bin/nomad-alloc-table"]
CMD ["--help"]
