//! The example programs, as `cargo test` builds them next to the test binaries.

use std::path::PathBuf;

/// The binary of example `name` (`cargo test --all-features` builds it).
pub fn example_binary(name: &str) -> PathBuf {
    let mut dir = std::env::current_exe().unwrap();
    dir.pop();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let binary = dir.join("examples").join(name);
    assert!(
        binary.exists(),
        "{} is missing: `cargo test --all-features` builds it (or `cargo build --all-features --example {name}`)",
        binary.display()
    );
    binary
}
