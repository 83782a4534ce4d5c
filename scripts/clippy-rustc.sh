#!/usr/bin/env bash
# The compiler of the workspace's own crates in CI (cargo's RUSTC_WORKSPACE_WRAPPER): Clippy's
# driver, which compiles as rustc does (with MIR optimisations off, as Clippy needs) and lints as it
# goes, every warning an error. One build then both lints the code and makes the binaries the
# tests run, where `cargo clippy` would first check every dependency a second time. Dependencies
# are compiled by rustc itself.
#
#   RUSTC_WORKSPACE_WRAPPER="$PWD/scripts/clippy-rustc.sh" cargo build --workspace --release --tests --bins
#
# Cargo calls it as `clippy-rustc.sh <rustc> <arguments>`; clippy-driver takes them as they come.
exec clippy-driver "$@" -D warnings
