//! Keeps docs and conventions honest: every library opens with a `//!` map, no debugging leftovers,
//! and ARCHITECTURE.md names every crate of the workspace.

use std::path::{Path, PathBuf};

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn rust_files(dir: &Path, files: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, files);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            files.push(path);
        }
    }
}

#[test]
fn libraries_are_documented_and_free_of_leftovers() {
    let mut files = Vec::new();
    rust_files(&repository().join("crates"), &mut files);
    assert!(files.len() > 20);
    let forbidden = [
        concat!("db", "g!("),
        concat!("to", "do!("),
        concat!("unimple", "mented!("),
    ];
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let name = file.file_name().unwrap();
        if name == "lib.rs" || name == "main.rs" && file.parent().unwrap().ends_with("src") {
            assert!(
                text.starts_with("//!"),
                "{} must open with a //! doc",
                file.display()
            );
        }
        for pattern in forbidden {
            assert!(
                !text.contains(pattern),
                "{} contains {pattern}",
                file.display()
            );
        }
    }
}

#[test]
fn architecture_names_every_crate() {
    let architecture = std::fs::read_to_string(repository().join("ARCHITECTURE.md")).unwrap();
    for entry in std::fs::read_dir(repository().join("crates")).unwrap() {
        let manifest = std::fs::read_to_string(entry.unwrap().path().join("Cargo.toml")).unwrap();
        let package = manifest
            .lines()
            .find_map(|line| line.strip_prefix("name = \""))
            .map(|rest| rest.trim_end_matches('"'))
            .unwrap();
        assert!(
            architecture.contains(&format!("`{package}`")),
            "ARCHITECTURE.md does not describe {package}"
        );
    }
}
