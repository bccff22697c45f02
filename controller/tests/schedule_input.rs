//! `faultctl schedule add` refuses bad input before it installs anything: run as a user
//! would (the real binary), with the drills and systemd directories moved to a scratch
//! directory, each refusal must exit 2, name what is wrong, and leave both empty.

use std::path::Path;
use std::process::Command;

fn empty(dir: &Path) -> bool {
    std::fs::read_dir(dir).unwrap().next().is_none()
}

#[test]
fn bad_input_is_refused_before_anything_is_installed() {
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipped: no systemd-analyze on this host (the package systemd)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let drills = tmp.path().join("drills");
    let units = tmp.path().join("units");
    std::fs::create_dir_all(&drills).unwrap();
    std::fs::create_dir_all(&units).unwrap();
    std::fs::write(
        tmp.path().join("fleet.toml"),
        "[[agents]]\nname = \"n1\"\naddress = \"unix:///run/faultline/faultd.sock\"\n",
    )
    .unwrap();
    let good = tmp.path().join("good.yaml");
    std::fs::write(
        &good,
        "name: nightly\ninventory: fleet.toml\nmax_duration: 1m\nsteps:\n  - name: kill\n    inject: {kill: {name: worker}}\n",
    )
    .unwrap();
    let broken = tmp.path().join("broken.yaml");
    std::fs::write(&broken, "name: [\n").unwrap();
    let no_inventory = tmp.path().join("noinv.yaml");
    std::fs::write(
        &no_inventory,
        "name: x\ninventory: missing.toml\nmax_duration: 1m\nsteps:\n  - name: kill\n    inject: {kill: {name: worker}}\n",
    )
    .unwrap();
    let not_a_key = tmp.path().join("not-a-key");
    std::fs::write(&not_a_key, "hello\n").unwrap();
    let g = good.to_str().unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["nightly", g, "--on-calendar", "every tuesday-ish"],
            "systemd-analyze calendar says",
        ),
        (
            vec!["night ly", g, "--on-calendar", "daily"],
            "invalid drill NAME",
        ),
        (
            vec!["a@b", g, "--on-calendar", "daily"],
            "invalid drill NAME",
        ),
        (
            vec![
                "nightly",
                broken.to_str().unwrap(),
                "--on-calendar",
                "daily",
            ],
            "invalid scenario",
        ),
        (
            vec![
                "nightly",
                no_inventory.to_str().unwrap(),
                "--on-calendar",
                "daily",
            ],
            "missing.toml",
        ),
        (
            vec![
                "nightly",
                g,
                "--on-calendar",
                "daily",
                "--randomized-delay",
                "soon",
            ],
            "--randomized-delay",
        ),
        (
            vec![
                "nightly",
                g,
                "--on-calendar",
                "daily",
                "--sign-key",
                not_a_key.to_str().unwrap(),
            ],
            "--sign-key",
        ),
    ];
    for (args, want) in cases {
        let out = Command::new(env!("CARGO_BIN_EXE_faultctl"))
            .args(["schedule", "add"])
            .args(&args)
            .env("FAULTLINE_DRILLS_DIR", &drills)
            .env("FAULTLINE_SYSTEMD_DIR", &units)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: wanted {want:?} in: {err}");
        assert!(
            empty(&drills) && empty(&units),
            "{args:?} installed something"
        );
    }
}
