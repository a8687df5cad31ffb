//! `mcos report` renders in a real browser: headless Chromium loads the page from disk (no
//! network), its DOM holds every chart as SVG with axis captions and one line or bar group per
//! series, and its screenshot is not blank and shows the series' colours. `mcos replay --plot`
//! writes an SVG chart. Without Chromium the browser checks say why and pass, except under
//! `CI=true` (.ci/run installs the Debian package `chromium`), where they fail.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

fn mcos(args: &[&str]) -> std::process::Output {
    let out = Command::new(env!("CARGO_BIN_EXE_mcos"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "mcos {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A small built-in workload as a trace file.
fn small_trace(dir: &Path) -> PathBuf {
    let p = dir.join("small.jsonl");
    mcos(&[
        "generate",
        "--out",
        p.to_str().unwrap(),
        "--requests",
        "600",
    ]);
    p
}

fn chromium() -> Option<PathBuf> {
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        let found = std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join(name))
                .find(|p| p.is_file())
        });
        if found.is_some() {
            return found;
        }
    }
    let reason = "no chromium on PATH (Debian package `chromium`)";
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{reason}: CI must have it (.ci/run installs it)"
    );
    eprintln!("skipping the browser checks: {reason}");
    None
}

fn headless(chrome: &Path, dir: &Path) -> Command {
    let mut c = Command::new(chrome);
    c.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--hide-scrollbars",
    ])
    .arg(format!("--user-data-dir={}", dir.join("profile").display()));
    c
}

#[test]
fn report_is_self_contained_and_renders_in_chromium() {
    let dir = tempfile::tempdir().unwrap();
    let trace = small_trace(dir.path());
    let html_path = dir.path().join("report.html");
    mcos(&[
        "report",
        "--trace",
        trace.to_str().unwrap(),
        "--out",
        html_path.to_str().unwrap(),
        "--points",
        "10",
        "--quiet",
    ]);
    let html = std::fs::read_to_string(&html_path).unwrap();
    for forbidden in [
        "<script",
        "src=\"http",
        "href=\"http",
        "<link",
        "<img",
        "@import",
    ] {
        assert!(
            !html.contains(forbidden),
            "the page must need nothing else: {forbidden}"
        );
    }
    for heading in [
        "Miss-ratio curves",
        "The brain over the trace",
        "Over the tiers",
        "Served replay",
    ] {
        assert!(html.contains(heading), "missing section {heading}");
    }

    let Some(chrome) = chromium() else { return };
    // The DOM as Chromium parsed it: every chart an SVG element with its axes and series.
    let dom = headless(&chrome, dir.path())
        .arg("--dump-dom")
        .arg(format!("file://{}", html_path.display()))
        .output()
        .unwrap();
    assert!(
        dom.status.success(),
        "{}",
        String::from_utf8_lossy(&dom.stderr)
    );
    let dom = String::from_utf8_lossy(&dom.stdout);
    let charts: Vec<&str> = dom.split("<svg").skip(1).collect();
    assert_eq!(charts.len(), 7, "seven charts in the rendered page");
    let mrc = charts[0];
    for text in [
        "capacity (% of unique blocks, log scale)",
        "block hit ratio",
        "lru",
        "min (bound)",
        "s3fifo",
    ] {
        assert!(mrc.contains(text), "the MRC chart lacks {text}");
    }
    assert!(mrc.matches("<polyline").count() >= 7, "one line per policy");
    assert!(
        charts[1].contains("mcos (brain)") && charts[1].contains("block accesses into the trace")
    );
    assert!(charts[3].contains("block hits") && charts[3].matches("<rect").count() > 3);
    assert!(charts[4].contains("seconds saved") && charts[4].contains("bound"));
    assert!(charts[5].contains("utilisation"));

    // The screenshot: not blank, the charts' colours on it.
    let png = dir.path().join("shot.png");
    let shot = headless(&chrome, dir.path())
        .arg(format!("--screenshot={}", png.display()))
        .arg("--window-size=1000,2400")
        .arg(format!("file://{}", html_path.display()))
        .output()
        .unwrap();
    assert!(
        shot.status.success(),
        "{}",
        String::from_utf8_lossy(&shot.stderr)
    );
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&png).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    let channels = info.color_type.samples();
    let pixels: Vec<&[u8]> = buf[..info.buffer_size()].chunks(channels).collect();
    let non_white = pixels
        .iter()
        .filter(|p| p[..3].iter().any(|&c| c < 235))
        .count();
    let share = non_white as f64 / pixels.len() as f64;
    assert!(
        share > 0.02,
        "screenshot is blank: {share:.4} of pixels not white"
    );
    let near = |p: &[u8], c: [u8; 3]| p[..3].iter().zip(c).all(|(&a, b)| a.abs_diff(b) < 30);
    for (name, rgb) in [("blue", [31, 119, 180]), ("orange", [255, 127, 14])] {
        let n = pixels.iter().filter(|p| near(p, rgb)).count();
        assert!(n > 100, "no {name} series drawn ({n} pixels)");
    }
}

#[test]
fn replay_plot_writes_one_chart() {
    let dir = tempfile::tempdir().unwrap();
    let trace = small_trace(dir.path());
    let svg = dir.path().join("run.svg");
    mcos(&[
        "replay",
        "--trace",
        trace.to_str().unwrap(),
        "--policy",
        "lru,min",
        "--capacity",
        "1%,10%,50%",
        "--plot",
        svg.to_str().unwrap(),
        "--format",
        "json",
    ]);
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.contains("<svg") && text.contains("block hit ratio"));
    assert!(text.contains(">lru<") || text.contains("lru"));
    assert!(text.contains("min") && text.matches("<polyline").count() >= 2);
    let bad = Command::new(env!("CARGO_BIN_EXE_mcos"))
        .args(["replay", "--trace", trace.to_str().unwrap(), "--plot"])
        .arg(dir.path().join("no/such/dir/x.svg"))
        .output()
        .unwrap();
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("--plot") && err.contains("does not exist"),
        "{err}"
    );
}
