//! Opening a page in headless Chromium from disk, for the tests of every kind of page (shared
//! with crates/cli's tests through `#[path]`). Without a browser the tests say they skipped;
//! with `LOUPE_REQUIRE_BROWSER` set (CI) they fail instead.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// `$LOUPE_CHROMIUM`, else the first Chromium-like browser on `$PATH`.
pub fn chromium() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("LOUPE_CHROMIUM") {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH")?;
    [
        "chromium",
        "chromium-headless-shell",
        "google-chrome",
        "chrome",
    ]
    .iter()
    .flat_map(|n| std::env::split_paths(&path).map(move |d| d.join(n)))
    .find(|p| p.is_file())
}

/// The browser, or None after saying the test skipped (a failure when CI requires it).
pub fn require() -> Option<PathBuf> {
    let found = chromium();
    if found.is_none() {
        assert!(
            std::env::var_os("LOUPE_REQUIRE_BROWSER").is_none(),
            "LOUPE_REQUIRE_BROWSER is set but no chromium was found (apt-get install chromium)"
        );
        eprintln!("skipped: no chromium (apt-get install chromium, or set LOUPE_CHROMIUM)");
    }
    found
}

/// What the browser made of a page.
pub struct Loaded {
    pub dom: String,
    /// Every console message or uncaught error (`:CONSOLE` lines of the browser's log).
    pub console: Vec<String>,
}

fn run(mut cmd: Command, what: &str) -> (String, String) {
    let dir = tempfile::tempdir().unwrap();
    let (out_path, err_path) = (dir.path().join("out"), dir.path().join("err"));
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: cannot start the browser: {e}"));
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let err = std::fs::read_to_string(&err_path).unwrap_or_default();
            assert!(status.success(), "{what}: browser exited {status}: {err}");
            return (std::fs::read_to_string(&out_path).unwrap(), err);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what}: the browser did not finish in 90 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn base(browser: &Path, profile: &Path) -> Command {
    let mut c = Command::new(browser);
    c.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-extensions",
        "--enable-logging=stderr",
        "--v=0",
        "--virtual-time-budget=5000",
    ]);
    c.arg(format!("--user-data-dir={}", profile.display()));
    c
}

/// Open `page` from disk: its DOM after the scripts ran, its console, and a screenshot at
/// `screenshot`.
pub fn open(browser: &Path, page: &Path, screenshot: &Path) -> Loaded {
    let profile = tempfile::tempdir().unwrap();
    let url = format!("file://{}", page.canonicalize().unwrap().display());
    let mut dump = base(browser, profile.path());
    dump.arg("--window-size=1280,900")
        .arg("--dump-dom")
        .arg(&url);
    let (dom, log) = run(dump, "dump-dom");
    let mut shot = base(browser, profile.path());
    shot.arg("--window-size=1280,3000")
        .arg(format!("--screenshot={}", screenshot.display()))
        .arg(&url);
    run(shot, "screenshot");
    let console = log
        .lines()
        .filter(|l| l.contains(":CONSOLE"))
        .map(str::to_string)
        .collect();
    Loaded { dom, console }
}

/// The attribute `name` of the page's `<body>` in the dumped DOM.
pub fn body_attr(dom: &str, name: &str) -> Option<String> {
    let start = dom.find("<body")?;
    let tag = &dom[start..start + dom[start..].find('>')?];
    let key = format!(" {name}=\"");
    let at = tag.find(&key)? + key.len();
    Some(tag[at..at + tag[at..].find('"')?].to_string())
}

/// The `width` and `height` attributes of every `<canvas>` in the DOM.
pub fn canvases(dom: &str) -> Vec<(u32, u32)> {
    let attr = |tag: &str, name: &str| -> u32 {
        let key = format!(" {name}=\"");
        tag.find(&key)
            .and_then(|i| {
                let v = &tag[i + key.len()..];
                v[..v.find('"')?].parse().ok()
            })
            .unwrap_or(0)
    };
    dom.match_indices("<canvas")
        .map(|(i, _)| {
            let tag = &dom[i..i + dom[i..].find('>').unwrap()];
            (attr(tag, "width"), attr(tag, "height"))
        })
        .collect()
}

/// The checks every page passes: nothing logged or blocked, ready, no script error, one
/// non-empty canvas per chart, every SVG figure present.
pub fn assert_rendered(l: &Loaded, charts: usize, figures: usize, what: &str) {
    assert!(
        l.console.is_empty(),
        "{what}: console output: {:#?}",
        l.console
    );
    assert_eq!(
        body_attr(&l.dom, "data-ready").as_deref(),
        Some("1"),
        "{what}: not ready"
    );
    assert_eq!(
        body_attr(&l.dom, "data-errors"),
        None,
        "{what}: script errors"
    );
    assert_eq!(
        body_attr(&l.dom, "data-charts"),
        Some(charts.to_string()),
        "{what}: charts built"
    );
    let c = canvases(&l.dom);
    assert_eq!(c.len(), charts, "{what}: one canvas per chart");
    assert!(
        c.iter().all(|&(w, h)| w > 0 && h > 0),
        "{what}: empty canvas {c:?}"
    );
    let svgs = l.dom.matches("<svg xmlns=").count();
    assert_eq!(svgs, figures, "{what}: SVG figures");
}
