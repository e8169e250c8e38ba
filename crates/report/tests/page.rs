//! Pages rendered from synthetic figures: escaping, determinism, data embedding, errors for
//! misshapen input, and the page opened in a real browser.

mod browser;

use loupe_report::svg::{self, Bar};
use loupe_report::{Axis, Block, Chart, Page, Rule, Scale, Section, Series, Style, Table};

const KERNEL: &str = "void at::native::elementwise_kernel<128, 4, at::native::gpu_kernel_impl<at::native::CUDAFunctor_add<float>>(at::TensorIteratorBase&, at::native::CUDAFunctor_add<float> const&)::{lambda(int)#1}>(int, </script><script>alert(1)</script>)";

fn scatter(n: usize) -> Chart {
    let xs: Vec<f64> = (0..n).map(|i| i as f64 * 0.01).collect();
    let ys = |k: f64| -> Vec<Option<f64>> {
        (0..n)
            .map(|i| Some(k * (1.0 + (i % 97) as f64 / 10.0)))
            .collect()
    };
    let fails: Vec<Option<f64>> = (0..n).map(|i| (i % 1000 == 7).then_some(50.0)).collect();
    Chart {
        title: "TTFT over run time".into(),
        caption: format!("{n} of {n} requests"),
        x: Axis {
            label: "s since start".into(),
            scale: Scale::Linear,
        },
        y: Axis {
            label: "ms".into(),
            scale: Scale::Log,
        },
        xs,
        series: vec![
            Series {
                label: "TTFT".into(),
                style: Style::Points,
                ys: ys(10.0),
            },
            Series {
                label: "E2E".into(),
                style: Style::Points,
                ys: ys(100.0),
            },
            Series {
                label: "failed".into(),
                style: Style::Cross,
                ys: fails,
            },
        ],
        rules: vec![Rule {
            label: "SLO 500 ms".into(),
            y: 500.0,
        }],
        ..Default::default()
    }
}

fn curve() -> Chart {
    let sorted: Vec<f64> = (1..=2000).map(|i| i as f64 / 7.0).collect();
    let (xs, ys) = loupe_report::reduce::percentile_curve(&sorted, 500, |v, p| {
        let r = p / 100.0 * (v.len() - 1) as f64;
        v[r.floor() as usize] + (v[r.ceil() as usize] - v[r.floor() as usize]) * r.fract()
    });
    Chart {
        title: "TTFT by percentile".into(),
        x: Axis {
            label: "percentile".into(),
            scale: Scale::Nines,
        },
        y: Axis {
            label: "ms".into(),
            scale: Scale::Log,
        },
        series: vec![Series {
            label: "TTFT".into(),
            style: Style::Line,
            ys: ys.into_iter().map(Some).collect(),
        }],
        xs,
        ..Default::default()
    }
}

fn page() -> Page {
    let bars = svg::top_with_other(
        (0..30)
            .map(|i| Bar {
                label: format!("{KERNEL} #{i}"),
                value: 100.0 - i as f64,
                class: i % 3,
                tooltip: format!("{i} calls"),
            })
            .collect(),
        20,
        3,
    );
    let classes = ["compute", "communication", "memcpy", "other"].map(String::from);
    Page {
        title: "Run <1> & \"friends\"".into(),
        subtitle: "loupe bench --tag '<b>'".into(),
        records: vec![serde_json::json!({"tag": "</script>", "n": 1})],
        sections: vec![
            Section {
                id: "latency".into(),
                title: "Latency".into(),
                blocks: vec![
                    Block::Text("Tags are <not> markup.".into()),
                    Block::Chart(curve()),
                    Block::Chart(scatter(10_000)),
                    Block::Table(Table {
                        caption: "Percentiles".into(),
                        header: vec!["metric".into(), "p99".into()],
                        rows: vec![vec![KERNEL.into(), "12.34".into()]],
                    }),
                ],
                ..Default::default()
            },
            Section {
                id: "kernels".into(),
                title: "Kernels".into(),
                blocks: vec![Block::Svg(svg::bars(
                    "Top kernels",
                    "20 of 30, then other",
                    &bars,
                    &classes,
                    |v| format!("{v:.1} ms"),
                ))],
                children: vec![Section {
                    id: "run-1".into(),
                    title: "Run 1".into(),
                    collapsed: true,
                    blocks: vec![Block::Pre("a <pre> & b".into()), Block::Chart(curve())],
                    ..Default::default()
                }],
                ..Default::default()
            },
        ],
    }
}

#[test]
fn every_string_is_escaped() {
    let html = String::from_utf8(loupe_report::render(&page()).unwrap()).unwrap();
    assert!(
        !html.contains("<script>alert(1)"),
        "a name closed a script element"
    );
    assert!(!html.contains("<not>") && !html.contains("'<b>'") && !html.contains("<128"));
    assert!(html.contains("Run &lt;1&gt; &amp; &quot;friends&quot;"));
    assert!(html.contains("a &lt;pre&gt; &amp; b"));
    // The record goes in verbatim, its `<` escaped as JSON.
    assert!(html.contains(r#"<script type="application/json" id="loupe-record">[{"tag":"\u003c/script\u003e","n":1}]</script>"#));
    assert_eq!(
        html.matches("<script").count(),
        4,
        "data, record, uPlot, glue"
    );
}

#[test]
fn same_page_same_bytes_and_the_data_reads_back() {
    let a = loupe_report::render(&page()).unwrap();
    assert_eq!(a, loupe_report::render(&page()).unwrap());
    let html = String::from_utf8(a).unwrap();
    let start = html.find(r#"id="loupe-data">"#).unwrap() + r#"id="loupe-data">"#.len();
    let end = start + html[start..].find("</script>").unwrap();
    let data: serde_json::Value = serde_json::from_str(&html[start..end]).unwrap();
    let charts = data["charts"].as_array().unwrap();
    assert_eq!(charts.len(), 3);
    assert_eq!(
        charts[1]["data"].as_array().unwrap().len(),
        4,
        "x + 3 series"
    );
    assert_eq!(charts[1]["data"][0][10_000 - 1], serde_json::json!(99.99));
    // The failures are a sparse column: only the points that exist.
    let failed = &charts[1]["data"][3];
    assert_eq!(failed["at"][0], 7);
    assert_eq!(failed["v"][0], 50);
    assert_eq!(failed["at"].as_array().unwrap().len(), 10);
    assert_eq!(charts[0]["x"]["scale"], "nines");
}

#[test]
fn misshapen_charts_and_repeated_anchors_are_errors() {
    let mut p = page();
    if let Block::Chart(c) = &mut p.sections[0].blocks[1] {
        c.series[0].ys.pop();
    }
    let e = loupe_report::render(&p).unwrap_err().to_string();
    assert!(
        e.contains("\"TTFT by percentile\"") && e.contains("499"),
        "{e}"
    );
    let mut p = page();
    p.sections[1].id = "latency".into();
    let e = loupe_report::render(&p).unwrap_err().to_string();
    assert!(e.contains("\"latency\" is used twice"), "{e}");
}

#[test]
fn the_page_renders_offline_in_a_browser() {
    let Some(chrome) = browser::require() else {
        return;
    };
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("report-pages");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("synthetic.html");
    let p = page();
    std::fs::write(&file, loupe_report::render(&p).unwrap()).unwrap();
    let loaded = browser::open(&chrome, &file, &dir.join("synthetic.png"));
    browser::assert_rendered(&loaded, p.charts().len(), p.figures(), "synthetic page");
    assert!(dir.join("synthetic.png").metadata().unwrap().len() > 10_000);
}
