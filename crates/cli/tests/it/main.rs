//! Integration tests: a real `kiln server` on a loopback port, driven over HTTP and through the
//! `kiln` binary. One test binary, so it links once.

mod auth;
mod batch;
mod buckets;
mod cli;
mod cluster;
mod console;
mod database;
mod datagen;
mod errors;
mod explain;
mod frameworks;
mod google_client;
mod inference;
mod jobs;
mod lifecycle;
mod observability;
mod onnx;
mod openapi;
mod packaging;
mod restart;
mod sandbox;
mod sequential;
mod serving;
mod site;
mod studies;
mod support;
mod takeover;
mod tidy;
mod tls;
mod tuning;
mod watch;
