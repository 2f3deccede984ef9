#!/usr/bin/env bash
# Builds the .deb: the release binary, its man pages and shell completions generated from the
# binary itself (so they cannot drift from --help), then cargo-deb with the metadata in
# Cargo.toml. Installs cargo-deb when missing. Prints the package's path.
set -euo pipefail
cd "$(dirname "$0")/../.."

if ! command -v cargo-deb >/dev/null 2>&1; then
  cargo install --locked cargo-deb@3.8.0 >&2
fi
cargo build --release --locked -p nomad-alloc-table >&2
# The generated assets go where Cargo.toml's asset list names them (target/deb-assets, relative
# to the repository); the binary is where cargo put it (CARGO_TARGET_DIR, else target).
assets=target/deb-assets
rm -rf "$assets"
mkdir -p "$assets/man" "$assets/completions"
bin=${CARGO_TARGET_DIR:-target}/release/nomad-alloc-table
"$bin" man --out-dir "$assets/man"
gzip -9n "$assets"/man/*.1
"$bin" completions bash > "$assets/completions/nomad-alloc-table"
"$bin" completions zsh > "$assets/completions/_nomad-alloc-table"
"$bin" completions fish > "$assets/completions/nomad-alloc-table.fish"
# One package in the output directory, so that the check finds this one.
rm -rf "${CARGO_TARGET_DIR:-target}/debian"
cargo deb --no-build --locked -p nomad-alloc-table
