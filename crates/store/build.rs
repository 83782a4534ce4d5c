//! Rebuilds the crate when a migration script is added or changed: `embed_migrations!` reads the
//! scripts when the crate compiles.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
