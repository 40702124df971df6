//! `init --check` through the library: the seed examples pass, and every bad input gets its exact
//! message (golden tests), never a panic.

use std::path::{Path, PathBuf};

use ankh::config::{self, LoadOptions, SAMPLE_SERVICE};

fn data(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(p)
}

/// Run `check` on paths; returns (exit code, output).
fn check(paths: &[PathBuf], root: Option<&Path>) -> (i32, String) {
    let mut out = Vec::new();
    let code = config::check(paths, root, &mut out);
    (code, String::from_utf8(out).unwrap())
}

#[test]
fn dump() {
    for d in ["horust", "zinit"] {
        let (code, out) = check(&[data(d)], None);
        println!("{d}: {code}\n{out}");
    }
}
