//! Debian's headless Chromium for the report tests: a screenshot of a page and its DOM
//! after load, each run with a fresh profile, optionally with no network at all (an
//! empty network namespace: no interface but a loopback that is down).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The `chromium` binary.
pub fn binary() -> PathBuf {
    PathBuf::from("/usr/bin/chromium")
}

/// Runs headless Chromium on the file `page` with `extra` flags (at most 120 s). With
/// `offline`, inside a new network namespace (`unshare --net`, needs root).
pub fn run(page: &Path, extra: &[String], offline: bool) -> Output {
    let profile = tempfile::Builder::new()
        .prefix("faultline-chromium-")
        .tempdir()
        .unwrap();
    let mut cmd = Command::new("timeout");
    cmd.arg("120");
    if offline {
        cmd.args(["unshare", "--net", "--"]);
    }
    cmd.arg(binary())
        // The flags known to work on these machines (env/machines/rust.md); without the
        // background-networking ones Chromium keeps trying hosts it cannot reach.
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(extra)
        .arg(format!("file://{}", page.display()))
        .stdin(Stdio::null());
    cmd.output().expect("run chromium")
}

/// A PNG screenshot of `page` at `width` x `height` into `png`.
pub fn screenshot(page: &Path, png: &Path, width: u32, height: u32, offline: bool) -> Output {
    run(
        page,
        &[
            format!("--window-size={width},{height}"),
            format!("--screenshot={}", png.display()),
        ],
        offline,
    )
}

/// The DOM of `page` after load, serialized by Chromium (`--dump-dom`).
pub fn dump_dom(page: &Path, offline: bool) -> (String, Output) {
    let out = run(page, &["--dump-dom".to_string()], offline);
    (String::from_utf8_lossy(&out.stdout).into_owned(), out)
}

/// Width, height and RGBA pixels of a PNG file.
pub fn read_png(path: &Path) -> (u32, u32, Vec<u8>) {
    let decoder = png::Decoder::new(std::io::BufReader::new(
        std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
    ));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    buf.truncate(info.buffer_size());
    let rgba = match info.color_type {
        png::ColorType::Rgba => buf,
        png::ColorType::Rgb => buf
            .chunks(3)
            .flat_map(|p| [p[0], p[1], p[2], 255])
            .collect(),
        other => panic!("unexpected PNG colour type {other:?}"),
    };
    (info.width, info.height, rgba)
}
