//! Build script: embeds the numbered migrations and guards against shipping without the web app.

use std::fmt::Write as _;
use std::path::Path;

fn main() {
    println!("cargo:rerun-if-changed=migrations");
    println!("cargo:rerun-if-changed=web/dist");
    println!("cargo:rerun-if-changed=web/dist/index.html");
    embed_migrations();
    check_web_dist();
}

/// Writes `$OUT_DIR/migrations.rs`: `[(version, name, sql)]` for every `NNNN_name.sql`,
/// in order, so adding a migration is just adding a file. Gaps and duplicates fail the build.
fn embed_migrations() {
    let dir =
        Path::new(&std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets it")).join("migrations");
    let mut found: Vec<(u32, String)> = std::fs::read_dir(&dir)
        .expect("migrations/ exists")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".sql"))
        .map(|n| {
            let version = n
                .split('_')
                .next()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("migration {n} must be named NNNN_name.sql"));
            (version, n)
        })
        .collect();
    found.sort();
    let mut out = String::from("&[\n");
    for (i, (version, name)) in found.iter().enumerate() {
        assert_eq!(
            *version as usize,
            i + 1,
            "migrations must be numbered 1, 2, 3… without gaps: {name}"
        );
        let path = dir.join(name);
        writeln!(
            out,
            "    ({version}, {name:?}, include_str!({:?})),",
            path.display().to_string()
        )
        .unwrap();
    }
    out.push(']');
    let dest = Path::new(&std::env::var("OUT_DIR").unwrap()).join("migrations.rs");
    std::fs::write(dest, out).unwrap();
}

/// rust-embed needs the folder to exist. A release build without the built web app is an error;
/// a debug build only warns (tests then fail on the missing `index.html`).
fn check_web_dist() {
    let dist =
        Path::new(&std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets it")).join("web/dist");
    if dist.join("index.html").exists() {
        return;
    }
    if std::env::var("PROFILE").as_deref() == Ok("release") {
        panic!("web/dist/index.html is missing: build the web app first (`make web`)");
    }
    std::fs::create_dir_all(&dist).unwrap();
    println!("cargo:warning=web/dist is empty: run `make web` to build the web app");
}
